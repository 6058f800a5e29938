"""`llm_incident_client.litellm.IncidentCallback` with the real LiteLLM (Router) in front of the local fake
OpenAI upstream (tests/fakeopenai.py), and the real llm-incident server: every control, and the events.

The LiteLLM proxy itself cannot be installed here (its `proxy` extra needs `litellm-proxy`, which the package
index does not have), so `proxy_call` plays the proxy's part: it runs the callback's `async_pre_call_hook` with
LiteLLM's own `UserAPIKeyAuth` and `DualCache`, answers a returned string as the proxy does (the fallback), and
hands the request to a LiteLLM `Router`, which calls the callback's success/failure hooks itself.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price list at import

import litellm  # noqa: E402
from litellm import Router  # noqa: E402
from litellm.caching.dual_cache import DualCache  # noqa: E402
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER  # noqa: E402
from litellm.proxy._types import UserAPIKeyAuth  # noqa: E402

from llm_incident.events.models import Event  # noqa: E402
from llm_incident_client import EventLogger  # noqa: E402
from llm_incident_client.litellm import IncidentCallback, RouteRejected  # noqa: E402
from tests.fakeopenai import FakeOpenAI  # noqa: E402
from tests.sdk_apps import MESSAGES, ROUTE, controls_for, events_for, put, stored  # noqa: E402


@pytest.fixture
def fake():
    return FakeOpenAI()


@pytest.fixture
def router(fake):
    with fake.serve() as base_url:
        deployment = {"api_base": base_url, "api_key": "sk-fake"}
        yield Router(model_list=[
            {"model_name": "support-model", "litellm_params": {"model": "openai/gpt-4o", **deployment}},
            {"model_name": "small-model", "litellm_params": {"model": "openai/gpt-4o-mini", **deployment}},
        ], num_retries=0, retry_after=0)


@pytest.fixture
def controls(server):
    with controls_for(server) as cache:
        yield cache


@pytest.fixture
def events(server):
    with events_for(server) as logger:
        yield logger


@pytest.fixture
def callback(controls, events):
    handler = IncidentCallback(controls, events)
    litellm.logging_callback_manager.add_litellm_callback(handler)
    yield handler
    # LiteLLM copies it into its success/failure lists (and skips a "duplicate" of the same settings)
    litellm.logging_callback_manager.remove_callback_from_all_lists(handler, require_self=False)


def stored_when(db, events: EventLogger, count: int) -> list[Event]:
    """The events, once `count` of them arrived."""
    deadline = time.monotonic() + 10
    while len(rows := stored(db, events)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return rows


async def proxy_call(callback: IncidentCallback, router: Router, data: dict, key_alias: str | None = None):
    """What the proxy does with one /chat/completions request: the pre-call hook, then the Router."""
    checked = await callback.async_pre_call_hook(UserAPIKeyAuth(key_alias=key_alias), DualCache(), data,
                                                 "completion")
    if isinstance(checked, str):
        return checked  # the proxy answers it as the assistant's message, without calling upstream
    response = await router.acompletion(**checked)
    if checked.get("stream"):
        return "".join([c.choices[0].delta.content or "" async for c in response])
    return response.choices[0].message.content


def run(coroutine):
    """Run `coroutine`, then wait for LiteLLM's logging queue (its callbacks) before the loop closes."""
    async def settled():
        try:
            return await coroutine
        finally:
            await asyncio.sleep(0)  # a stream's end schedules its logging task
            await GLOBAL_LOGGING_WORKER.flush()
    return asyncio.run(settled())


def test_calls_are_recorded_with_the_route_from_metadata_tags_or_key_alias(db, router, fake, callback, events):
    async def calls():
        return [
            await proxy_call(callback, router, {"model": "support-model", "messages": MESSAGES,
                                                "metadata": {"llm_incident_route": ROUTE}}),
            await proxy_call(callback, router, {"model": "support-model", "messages": MESSAGES, "stream": True,
                                                "metadata": {"tags": ["team:a", "route:search.summarize"]}}),
            await proxy_call(callback, router, {"model": "small-model", "messages": MESSAGES},
                             key_alias="billing.bot"),
        ]

    assert run(calls()) == ["Hello from the fake model"] * 3
    fake.fail(429)
    with pytest.raises(litellm.RateLimitError):
        run(proxy_call(callback, router, {"model": "support-model", "messages": MESSAGES,
                                          "metadata": {"llm_incident_route": ROUTE}}))
    run(router.acompletion(model="support-model", messages=MESSAGES))  # names no route: not recorded
    rows = stored_when(db, events, 4)
    assert sorted(((e.route, e.model, e.provider, e.tokens_out, e.status, e.error_code, e.attempt,
                    e.meta["stream"]) for e in rows), key=repr) == [
        ("billing.bot", "gpt-4o-mini", "openai", 5, "ok", None, 1, False),
        ("search.summarize", "gpt-4o", "openai", 5, "ok", None, 1, True),
        ("support.reply", "gpt-4o", "openai", 5, "ok", None, 1, False),
        ("support.reply", "gpt-4o", "openai", None, "error", "429", 1, False),
    ]
    ok = [e for e in rows if e.status == "ok"]
    assert all(e.tokens_in and e.duration_ms > 0 and e.env == "prod" for e in ok)
    assert {e.meta["controls_version"] for e in rows} == {0}
    assert len(fake.requests) == 5


def test_a_killed_route_gets_the_fallback_or_is_rejected_without_an_upstream_call(db, api, router, fake,
                                                                                controls, callback, events):
    data = {"model": "support-model", "messages": MESSAGES, "metadata": {"llm_incident_route": ROUTE}}
    put(api, controls, {"enabled": False, "fallback_message": "Back soon."})
    assert run(proxy_call(callback, router, dict(data))) == "Back soon."
    assert run(proxy_call(IncidentCallback(controls, events, fallback_message="Later."), router,
                          {**data, "metadata": {}}, key_alias=ROUTE)) == "Back soon."
    with pytest.raises(RouteRejected) as rejected:
        run(proxy_call(IncidentCallback(controls, events, on_kill="reject"), router, dict(data)))
    assert (rejected.value.status_code, rejected.value.message) == (503, "Back soon.")
    assert fake.requests == [] and stored_when(db, events, 0) == []

    put(api, controls, {"enabled": True})
    assert run(proxy_call(callback, router, dict(data))) == "Hello from the fake model"
    assert len(fake.requests) == 1


def test_clamp_model_swap_and_retry_cap_are_applied_before_the_router(db, api, router, fake, controls,
                                                                      callback, events):
    data = {"model": "support-model", "messages": MESSAGES, "metadata": {"llm_incident_route": ROUTE}}
    put(api, controls, {"max_tokens": 2, "model": "small-model"})
    assert run(proxy_call(callback, router, {**data, "max_tokens": 500})) == "Hello from"
    assert run(proxy_call(callback, router, dict(data, stream=True))) == "Hello from"
    assert [(r.body["model"], r.body["max_tokens"]) for r in fake.requests] == [("gpt-4o-mini", 2)] * 2

    put(api, controls, {"max_tokens": None, "model": None, "retry_cap": 1})
    fake.fail(500, times=5)
    with pytest.raises(litellm.InternalServerError):
        run(proxy_call(callback, router, {**data, "num_retries": 4}))
    assert len(fake.requests) == 2 + 2  # one try and one retry

    rows = stored_when(db, events, 3)
    assert [(e.model, e.tokens_out, e.status, e.meta["controls_version"]) for e in rows[:2]] == [
        ("gpt-4o-mini", 2, "ok", 1), ("gpt-4o-mini", 2, "ok", 1)]
    assert [(e.model, e.status, e.error_code, e.attempt) for e in rows[2:]] == [
        ("gpt-4o", "error", "500", 1), ("gpt-4o", "error", "500", 2)]


def test_the_hook_leaves_requests_alone_without_a_route_or_controls(controls):
    data = {"model": "m", "messages": MESSAGES}
    assert run(IncidentCallback(controls).async_pre_call_hook(UserAPIKeyAuth(), DualCache(), data,
                                                              "completion")) is data
    assert run(IncidentCallback().async_pre_call_hook(UserAPIKeyAuth(key_alias="x"), DualCache(), data,
                                                      "completion")) is data
    with pytest.raises(ValueError):
        IncidentCallback(on_kill="ignore")
