"""`llm_incident_client.openai.instrument` with the real `openai` package, against a local OpenAI-compatible
fake (tests/fakeopenai.py) and the real llm-incident server: every control, and the events recorded."""

from __future__ import annotations

import asyncio

import openai
import pytest

from llm_incident.events.models import Event
from llm_incident_client.openai import RouteKilled, instrument
from tests.fakeopenai import FakeOpenAI
from tests.sdk_apps import MESSAGES, ROUTE, controls_for, events_for, put, stored


@pytest.fixture
def fake():
    return FakeOpenAI()


@pytest.fixture
def upstream(fake):
    with fake.serve() as base_url:
        yield base_url


@pytest.fixture
def controls(server):
    with controls_for(server) as cache:
        yield cache


@pytest.fixture
def events(server):
    with events_for(server) as logger:
        yield logger


def summary(rows: list[Event]) -> list[tuple]:
    return [(e.model, e.provider, e.tokens_in, e.tokens_out, e.status, e.error_code, e.attempt,
             e.meta["api"], e.meta["stream"]) for e in rows]


def sync_client(base_url: str, **options) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-fake", base_url=base_url, **options)


def async_client(base_url: str, **options) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-fake", base_url=base_url, **options)


# ---- recording -----------------------------------------------------------------------------------------

def test_each_call_is_recorded_with_its_usage_streamed_or_not(db, upstream, fake, controls, events):
    client = instrument(sync_client(upstream), ROUTE, controls=controls, events=events)
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert chat.choices[0].message.content == "Hello from the fake model"
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake model"  # no usage-only chunk
    answer = client.responses.create(model="gpt-4.1", input="where is my order")
    assert answer.output_text == "Hello from the fake model"
    with client.responses.create(model="gpt-4.1", input="where is my order", stream=True) as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    asked_usage = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert asked_usage[-1].usage.completion_tokens == 5  # asked for by the app: passed through
    counted = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": False}))
    assert len(counted) == 5

    assert fake.requests[1].body["stream_options"] == {"include_usage": True}
    rows = stored(db, events)
    assert summary(rows) == [
        ("gpt-4o-mini", "openai", 4, 5, "ok", None, 1, "chat.completions", False),
        ("gpt-4o-mini", "openai", 4, 5, "ok", None, 1, "chat.completions", True),
        ("gpt-4.1", "openai", 4, 5, "ok", None, 1, "responses", False),
        ("gpt-4.1", "openai", 4, 5, "ok", None, 1, "responses", True),
        ("gpt-4o-mini", "openai", 4, 5, "ok", None, 1, "chat.completions", True),
        ("gpt-4o-mini", "openai", None, 5, "ok", None, 1, "chat.completions", True),  # no usage: pieces counted
    ]
    assert all(e.route == ROUTE and e.env == "prod" and e.duration_ms > 0 for e in rows)
    assert {e.meta["controls_version"] for e in rows} == {0}


def test_the_async_client_is_recorded_the_same_way(db, upstream, controls, events):
    client = instrument(async_client(upstream), ROUTE, controls=controls, events=events)

    async def calls() -> list[str]:
        chat = await client.chat.completions.create(model="m", messages=MESSAGES)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream]
        answer = await client.responses.create(model="m", input="where is my order")
        async with await client.responses.create(model="m", input="where is my order", stream=True) as events_:
            kinds = [e.type async for e in events_]
        return [chat.choices[0].message.content, "".join(pieces), answer.output_text, kinds[-1]]

    assert asyncio.run(calls()) == ["Hello from the fake model"] * 3 + ["response.completed"]
    assert summary(stored(db, events)) == [
        ("m", "openai", 4, 5, "ok", None, 1, "chat.completions", False),
        ("m", "openai", 4, 5, "ok", None, 1, "chat.completions", True),
        ("m", "openai", 4, 5, "ok", None, 1, "responses", False),
        ("m", "openai", 4, 5, "ok", None, 1, "responses", True),
    ]


# ---- kill ----------------------------------------------------------------------------------------------

def test_a_killed_route_sends_nothing_upstream_and_raises_route_killed(db, api, upstream, fake, controls, events):
    client = instrument(sync_client(upstream), ROUTE, controls=controls, events=events)
    put(api, controls, {"enabled": False, "fallback_message": "Back soon."})
    with pytest.raises(RouteKilled) as killed:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert (killed.value.route, killed.value.message, killed.value.decision.version) == (ROUTE, "Back soon.", 1)
    with pytest.raises(RouteKilled):
        client.responses.create(model="m", input="hi", stream=True)
    with pytest.raises(RouteKilled):
        asyncio.run(instrument(async_client(upstream), ROUTE, controls=controls).chat.completions.create(
            model="m", messages=MESSAGES))
    assert fake.requests == [] and stored(db, events) == []  # no upstream call, so no call event

    put(api, controls, {"enabled": True})
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake.requests) == 1 and len(stored(db, events)) == 1


def test_a_killed_route_answers_the_canned_reply_when_configured(db, api, upstream, fake, controls, events):
    client = instrument(sync_client(upstream), ROUTE, controls=controls, events=events,
                        fallback="Sorry, try later.")
    put(api, controls, {"enabled": False})
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == \
        "Sorry, try later."
    assert client.responses.create(model="m", input="hi").output_text == "Sorry, try later."
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["Sorry, try later."]
    kinds = [e.type for e in client.responses.create(model="m", input="hi", stream=True)]
    assert kinds == ["response.output_text.delta", "response.completed"]

    put(api, controls, {"enabled": False, "fallback_message": "Back soon."})  # the responders' words win
    aclient = instrument(async_client(upstream), ROUTE, controls=controls, events=events, fallback="unused")

    async def calls() -> tuple[str, list[str]]:
        reply = await aclient.chat.completions.create(model="m", messages=MESSAGES)
        stream = await aclient.responses.create(model="m", input="hi", stream=True)
        return reply.choices[0].message.content, [e.type async for e in stream]

    assert asyncio.run(calls()) == ("Back soon.", ["response.output_text.delta", "response.completed"])
    chosen = instrument(sync_client(upstream), ROUTE, controls=controls,
                        fallback=lambda decision: f"v{decision.version}: {decision.fallback_message}")
    assert chosen.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == \
        "v2: Back soon."
    assert fake.requests == [] and stored(db, events) == []


# ---- clamp, model and provider switch ------------------------------------------------------------------

def test_a_token_clamp_caps_every_limit_and_adds_one_when_absent(db, api, upstream, fake, controls, events):
    client = instrument(sync_client(upstream), ROUTE, controls=controls, events=events)
    put(api, controls, {"max_tokens": 2})
    client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=100)
    client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=50)
    client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=1)  # already below: kept
    client.chat.completions.create(model="m", messages=MESSAGES, stream=True).close()
    client.responses.create(model="m", input="hi", max_output_tokens=300)
    asyncio.run(instrument(async_client(upstream), ROUTE, controls=controls, events=events)
                .responses.create(model="m", input="hi"))
    limits = [{k: v for k, v in r.body.items() if k.startswith("max_")} for r in fake.requests]
    assert limits == [{"max_tokens": 2}, {"max_completion_tokens": 2}, {"max_tokens": 1},
                      {"max_completion_tokens": 2}, {"max_output_tokens": 2}, {"max_output_tokens": 2}]
    rows = stored(db, events)
    assert [e.tokens_out for e in rows if not e.meta["stream"]] == [2, 2, 1, 2, 2]
    assert {e.meta["controls_version"] for e in rows} == {1}


def test_a_model_switch_replaces_the_model_and_a_provider_switch_uses_that_client(db, api, upstream, fake,
                                                                                  controls, events):
    backup = FakeOpenAI()
    with backup.serve() as backup_url:
        client = instrument(sync_client(upstream), ROUTE, controls=controls, events=events,
                            clients={"azure": sync_client(backup_url)})
        put(api, controls, {"model": "gpt-4o-mini"})
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        asyncio.run(instrument(async_client(upstream), ROUTE, controls=controls, events=events)
                    .responses.create(model="gpt-4o", input="hi"))
        put(api, controls, {"model": None, "provider": "azure"})
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        put(api, controls, {"provider": "nobody-configured"})
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r.body["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]
    assert [r.body["model"] for r in backup.requests] == ["gpt-4o"]
    assert [(e.model, e.provider) for e in stored(db, events)] == [
        ("gpt-4o-mini", "openai"), ("gpt-4o-mini", "openai"), ("gpt-4o", "azure"), ("gpt-4o", "openai")]


# ---- retries -------------------------------------------------------------------------------------------

def test_retries_are_one_event_each_and_the_retry_cap_cuts_them(db, api, upstream, fake, controls, events):
    client = instrument(sync_client(upstream, max_retries=3), ROUTE, controls=controls, events=events)
    fake.fail(429, times=2, retry_after_ms="1")
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    assert len(fake.requests) == 3  # the client's own max_retries=3 allowed it

    put(api, controls, {"retry_cap": 1})
    fake.fail(503, times=5, retry_after_ms="1")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake.requests) == 5  # 1 try + 1 retry

    put(api, controls, {"retry_cap": 0})
    fake._failures.clear()
    fake.fail(429, retry_after_ms="1")
    with pytest.raises(openai.RateLimitError):
        asyncio.run(instrument(async_client(upstream, max_retries=3), ROUTE, controls=controls, events=events)
                    .responses.create(model="m", input="hi", stream=True))
    assert len(fake.requests) == 6

    fake.fail(400)  # not retryable, whatever the cap
    put(api, controls, {"retry_cap": None})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake.requests) == 7

    assert [(e.status, e.error_code, e.attempt, e.tokens_out) for e in stored(db, events)] == [
        ("error", "429", 1, None), ("error", "429", 2, None), ("ok", None, 3, 5),
        ("error", "503", 1, None), ("error", "503", 2, None),
        ("error", "429", 1, None),
        ("error", "400", 1, None),
    ]


def test_connection_errors_are_recorded_and_retried(db, controls, events):
    from tests.support import free_port
    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = instrument(sync_client(dead, max_retries=1, timeout=2), ROUTE, controls=controls, events=events)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert [(e.status, e.error_code, e.attempt) for e in stored(db, events)] == [
        ("error", "APIConnectionError", 1), ("error", "APIConnectionError", 2)]


def test_instrument_checks_its_arguments_and_passes_the_rest_through(upstream, fake):
    with pytest.raises(ValueError):
        instrument(sync_client(upstream), "")
    with pytest.raises(TypeError):
        instrument(object(), ROUTE)  # type: ignore[arg-type]
    client = instrument(sync_client(upstream), ROUTE)
    assert client.base_url == sync_client(upstream).base_url and client.route == ROUTE
    assert client.with_options(timeout=5).route == ROUTE
    fake.fail(429, times=3, retry_after_ms="1")
    with pytest.raises(openai.RateLimitError):  # no controls, no logger: still the client's retries
        client.with_options(max_retries=1).chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake.requests) == 2
    assert client.chat.completions.with_raw_response is not None  # unguarded, the SDK's own
