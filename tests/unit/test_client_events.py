"""The SDK logger's pure parts and its retry policy against an in-process httpx transport."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

import llm_incident_client as client
from llm_incident_client import Call, EventLogger, current_call
from llm_incident_client.sender import encode_event, split_by_size
from llm_incident_client.tracking import Tracker, error_code_of
from llm_incident_client.transport import backoff_delay, is_retryable, retry_after_seconds
from tests.support import free_port

DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing answers HTTP there


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class FakeServer:
    """An httpx transport answering like `/v1/events`, scripted with a list of responses first."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            self.times.append(time.monotonic())
            step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        if step is not None:
            return step
        n = len(json.loads(request.content)["events"])
        return httpx.Response(200, json={"accepted": n, "duplicates": 0, "rejected": [], "unpriced": 0})

    def batches(self) -> list[list[dict]]:
        return [json.loads(r.content)["events"] for r in self.requests]


def make_logger(fake: FakeServer, **opts) -> EventLogger:
    opts = {"flush_interval": 0.02, "max_retry_backoff": 0.02, **opts}
    return EventLogger("http://llm-incident.test/", "key-1", transport=httpx.MockTransport(fake), **opts)


@pytest.fixture
def no_default_logger() -> Iterator[None]:
    client.shutdown()
    yield
    client.shutdown()


# --- transport conventions ----------------------------------------------------------------------------------
def test_retryable_statuses():
    assert [s for s in (200, 400, 401, 404, 408, 413, 422, 429, 500, 502, 503, 599) if is_retryable(s)] == [
        408, 429, 500, 502, 503, 599]


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds("0.5", now) == 0.5
    assert retry_after_seconds("Thu, 26 Nov 2026 12:00:10 GMT", now) == 10.0
    assert retry_after_seconds("Thu, 26 Nov 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("-4", now) == 0.0
    assert retry_after_seconds("86400", now) == 300.0
    assert [retry_after_seconds(v, now) for v in (None, "", "soon", "nan")] == [None] * 4


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0), (500, 30.0)]:
        delays = [backoff_delay(attempt, base=0.5, cap=30.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0  # jittered, not a fixed schedule


def test_constructor_rejects_nonsense_configuration():
    for url, key in [("localhost:8000", "k"), (None, "k"), ("http://x", ""), ("http://x", None)]:
        with pytest.raises(ValueError):
            EventLogger(url, key)
    with pytest.raises(ValueError):
        EventLogger("http://x", "k", batch_size=0)
    with pytest.raises(ValueError):
        EventLogger("http://x", "k", max_queue=0)


# --- encoding -----------------------------------------------------------------------------------------------
def test_encode_event_handles_common_python_values_and_refuses_the_rest():
    ts = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    encoded = json.loads(encode_event({"ts": ts, "cost_usd": Decimal("0.25"), "metadata": {"tags": {"a"}}}))
    assert encoded == {"ts": "2026-11-26T12:00:00+00:00", "cost_usd": 0.25, "metadata": {"tags": ["a"]}}
    with pytest.raises(ValueError):
        encode_event({"tokens_in": float("nan")})  # would be invalid JSON for the whole batch
    with pytest.raises(TypeError):
        encode_event({"metadata": {"obj": object()}})


def test_split_by_size_keeps_every_request_under_the_limit():
    parts = [b"x" * 40] * 10
    groups = split_by_size(parts, 100)
    assert [p for g in groups for p in g] == parts
    assert all(len(b'{"events":[' + b",".join(g) + b"]}") <= 100 for g in groups)
    assert split_by_size([], 100) == []


# --- the call record and track -------------------------------------------------------------------------------
def test_call_to_event_leaves_unset_fields_out():
    call = Call(route="support.reply", model="gpt-4o", tokens_out=12, extra={"region": "eu"})
    event = call.to_event()
    assert event == {"route": "support.reply", "model": "gpt-4o", "tokens_out": 12, "status": "ok",
                     "event_id": call.event_id, "region": "eu"}
    assert len(call.event_id) == 32 and int(call.event_id, 16) >= 0


def test_error_code_prefers_http_status_attributes_over_the_class_name():
    class ApiError(Exception):
        status_code = 429

    class Legacy(Exception):
        http_status = "503"

    class WithResponse(Exception):
        response = type("R", (), {"status_code": 502})()

    class Weird(Exception):
        status_code = True

    assert [error_code_of(e) for e in (ApiError(), Legacy(), WithResponse(), Weird(), TimeoutError())] == [
        "429", "503", "502", "Weird", "TimeoutError"]


class Sink:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def log(self, event: Mapping) -> str:
        self.events.append(dict(event))
        return event["event_id"]


def test_track_context_manager_measures_and_logs_what_the_app_set():
    sink = Sink()
    before = datetime.now(timezone.utc)
    with Tracker(lambda: sink, "support.reply", model="gpt-4o", env="staging",
                 metadata={"team": "a"}, region="eu") as call:
        assert current_call() is call
        call.tokens_in, call.tokens_out, call.prompt_version = 100, 20, "v7"
        call.metadata["user_tier"] = "pro"
        time.sleep(0.02)
    assert current_call() is None
    [event] = sink.events
    assert event["event_id"] == call.event_id
    assert event["metadata"] == {"team": "a", "user_tier": "pro"}
    assert (event["route"], event["model"], event["env"], event["region"]) == (
        "support.reply", "gpt-4o", "staging", "eu")
    assert (event["tokens_in"], event["tokens_out"], event["prompt_version"], event["status"]) == (
        100, 20, "v7", "ok")
    assert 20 <= event["duration_ms"] < 2000
    started = datetime.fromisoformat(event["ts"])
    assert event["ts"].endswith("Z") and before <= started <= before + timedelta(seconds=1)


def test_track_decorator_makes_one_fresh_record_per_invocation():
    sink = Sink()
    tracker = Tracker(lambda: sink, "r", metadata={"k": 1})

    @tracker
    def answer(x: int) -> int:
        """Docs."""
        current_call().metadata["x"] = x
        return x * 2

    assert [answer(1), answer(2)] == [2, 4]
    assert answer.__name__ == "answer" and answer.__doc__ == "Docs."
    assert [e["metadata"] for e in sink.events] == [{"k": 1, "x": 1}, {"k": 1, "x": 2}]
    assert sink.events[0]["event_id"] != sink.events[1]["event_id"]


def test_track_exception_is_logged_as_error_and_reraised_unchanged():
    sink = Sink()

    class RateLimited(Exception):
        status_code = 429

    boom = RateLimited("slow down")
    with pytest.raises(RateLimited) as raised:
        with Tracker(lambda: sink, "r") as call:
            call.tokens_in = 5
            raise boom
    assert raised.value is boom

    @Tracker(lambda: sink, "r")
    def fails() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        fails()
    assert [(e["status"], e["error_code"]) for e in sink.events] == [("error", "429"), ("error", "ValueError")]
    assert sink.events[0]["tokens_in"] == 5


def test_track_supports_async_functions_and_async_with():
    sink = Sink()
    tracker = Tracker(lambda: sink, "r")

    @tracker
    async def call_model() -> str:
        await asyncio.sleep(0.01)
        current_call().tokens_out = 3
        return "ok"

    async def main() -> None:
        assert await asyncio.gather(call_model(), call_model()) == ["ok", "ok"]
        async with Tracker(lambda: sink, "r2") as call:
            call.status = "flagged"

    asyncio.run(main())
    assert [(e["route"], e.get("tokens_out"), e["status"]) for e in sink.events] == [
        ("r", 3, "ok"), ("r", 3, "ok"), ("r2", None, "flagged")]
    assert all(e["duration_ms"] >= 10 for e in sink.events[:2])


def test_a_failing_sink_never_hides_the_apps_result_or_exception():
    class Broken:
        def log(self, event):
            raise RuntimeError("sink down")

    with Tracker(lambda: Broken(), "r"):
        pass
    with pytest.raises(KeyError):
        with Tracker(lambda: Broken(), "r"):
            raise KeyError("app")


def test_module_level_track_is_a_noop_until_configured(no_default_logger):
    assert client.get_logger() is None

    @client.track(route="r", model="m")
    def work() -> str:
        return "done"

    with client.track(route="r") as call:
        call.tokens_in = 1
    assert work() == "done"
    with pytest.raises(ZeroDivisionError):
        with client.track(route="r"):
            1 / 0


def test_module_level_track_finds_the_logger_configured_after_decoration(no_default_logger):
    fake = FakeServer()

    @client.track(route="late.bound", model="m")
    def work() -> int:
        return 7

    logger = client.configure("http://llm-incident.test", "key-1", transport=httpx.MockTransport(fake),
                              flush_interval=0.02)
    assert client.get_logger() is logger
    assert work() == 7
    assert client.shutdown(5) is True
    assert [e["route"] for b in fake.batches() for e in b] == ["late.bound"]
    assert client.get_logger() is None


# --- EventLogger against a scripted transport ------------------------------------------------------------------
def test_batches_are_posted_with_the_key_and_event_ids():
    fake = FakeServer()
    logger = make_logger(fake, batch_size=3)
    original = {"route": "r", "tokens_in": 1}
    ids = [logger.log({**original, "n": i}) for i in range(7)]
    own = logger.log({"route": "r", "event_id": "my-own-id"})
    assert logger.flush(5) is True
    assert original == {"route": "r", "tokens_in": 1}  # the caller's dict is not modified
    sent = [e for b in fake.batches() for e in b]
    assert [e["event_id"] for e in sent] == [*ids, own] and own == "my-own-id"
    assert all(len(i) == 32 for i in ids) and len(set(ids)) == 7
    assert all(len(b) <= 3 for b in fake.batches())
    request = fake.requests[0]
    assert request.url == "http://llm-incident.test/v1/events"
    assert request.headers["authorization"] == "Bearer key-1"
    assert request.headers["content-type"] == "application/json"
    assert logger.stats.sent == 8 and logger.stats.queued == 0
    assert logger.close() is True


def test_transport_errors_and_5xx_are_retried_with_the_same_events():
    fake = FakeServer(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(408))
    logger = make_logger(fake)
    logger.log({"route": "r"})
    logger.log({"route": "r"})
    assert logger.flush(5) is True
    first, *resent = fake.batches()
    assert len(resent) == 3 and all(batch == first for batch in resent)
    assert (logger.stats.retries, logger.stats.sent) == (3, 2)
    logger.close()


def test_429_waits_at_least_retry_after():
    fake = FakeServer(httpx.Response(429, headers={"Retry-After": "0.3"}))
    logger = make_logger(fake, max_retry_backoff=0.01)
    logger.log({"route": "r"})
    assert logger.flush(5) is True
    assert len(fake.times) == 2 and fake.times[1] - fake.times[0] >= 0.29
    logger.close()


def test_other_4xx_are_not_retried_counted_as_rejected_and_logged_once(caplog):
    fake = FakeServer(*[httpx.Response(401, json={"error": "invalid or revoked API key"})] * 2)
    logger = make_logger(fake, batch_size=2)
    with caplog.at_level(logging.DEBUG, logger="llm_incident.client"):
        for _ in range(2):
            logger.log({"route": "r"})
            logger.log({"route": "r"})
            assert logger.flush(5) is True
    assert len(fake.requests) == 2
    assert (logger.stats.rejected, logger.stats.retries, logger.stats.sent) == (4, 0, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["2 events rejected with HTTP 401 (not retried): invalid or revoked API key"]
    logger.close()


def test_per_event_rejections_and_duplicates_in_a_200_are_counted(caplog):
    reply = {"accepted": 1, "duplicates": 1, "unpriced": 0, "rejected": [
        {"index": 2, "event_id": "bad", "errors": [{"field": "tokens_out", "message": "must be >= 0"}]}]}
    fake = FakeServer(httpx.Response(200, json=reply))
    logger = make_logger(fake)
    with caplog.at_level(logging.WARNING, logger="llm_incident.client"):
        for event_id in ("a", "b", "bad"):
            logger.log({"route": "r", "event_id": event_id})
        assert logger.flush(5)
    stats = logger.stats
    assert (stats.sent, stats.duplicates, stats.rejected) == (1, 1, 1)
    assert "event bad rejected by the server: tokens_out: must be >= 0" in caplog.text
    logger.close()


def test_oversized_batches_are_split_and_an_oversized_event_is_refused():
    fake = FakeServer()
    logger = make_logger(fake, max_batch_bytes=2048)
    for i in range(6):
        logger.log({"route": "r", "input_excerpt": "x" * 600, "n": i})
    logger.log({"route": "r", "input_excerpt": "y" * 5000})
    assert logger.flush(5)
    assert all(len(r.content) <= 2048 for r in fake.requests) and len(fake.requests) >= 3
    assert [e["n"] for b in fake.batches() for e in b] == list(range(6))
    assert (logger.stats.sent, logger.stats.invalid) == (6, 1)
    logger.close()


# --- never raises, bounded, lifecycle --------------------------------------------------------------------------
class ExplodingMapping(Mapping):
    def __getitem__(self, key):
        raise RuntimeError("boom")

    def __iter__(self):
        raise RuntimeError("boom")

    def __len__(self):
        return 1


def test_log_never_raises_on_garbage_and_counts_it():
    fake = FakeServer()
    logger = make_logger(fake)
    garbage = [None, "text", 42, ["route", "r"], ExplodingMapping(),
               {"route": "r", "tokens_in": float("inf")}, {"route": "r", "metadata": {"x": object()}},
               {"route": "r", "ts": datetime(2026, 1, 1)}]
    results = [logger.log(g) for g in garbage]  # type: ignore[arg-type]
    good = logger.log({"route": "r"})
    assert results[:5] == [None] * 5 and all(isinstance(r, str) for r in results[5:])
    assert logger.flush(5)
    sent = [e for b in fake.batches() for e in b]
    # the naive timestamp is the server's to judge; NaN/inf and objects never leave the process
    assert [e["event_id"] for e in sent] == [results[7], good]
    assert logger.stats.invalid == 7
    logger.close()


def test_queue_full_drops_and_counts_while_the_server_is_unreachable():
    logger = EventLogger(f"http://127.0.0.1:{free_port()}", "k", max_queue=5, flush_interval=0.01,
                         max_retry_backoff=0.05, timeout=1)
    ids = [logger.log({"route": "r", "n": i}) for i in range(8)]
    assert all(ids[:5]) and ids[5:] == [None, None, None]
    wait_for(lambda: logger.stats.retries >= 1)
    assert logger.log({"route": "r"}) is None
    stats = logger.stats
    assert (stats.dropped, stats.queued, stats.sent) == (4, 5, 0)
    assert logger.flush(0.1) is False
    started = time.monotonic()
    assert logger.close(0.3) is False
    assert time.monotonic() - started < 2
    assert logger.stats.queued == 5


def test_close_flushes_without_waiting_for_the_interval_and_later_logs_are_dropped():
    fake = FakeServer()
    logger = make_logger(fake, flush_interval=60)
    logger.log({"route": "r"})
    started = time.monotonic()
    assert logger.close(5) is True
    assert time.monotonic() - started < 2
    assert logger.stats.sent == 1
    assert logger.log({"route": "r"}) is None and logger.stats.dropped == 1
    assert logger.close() is True  # idempotent
    assert logger.flush() is True


def test_flush_with_nothing_logged_returns_at_once_and_no_thread_is_started_until_then():
    before = {t.ident for t in threading.enumerate()}
    logger = EventLogger(DEAD_URL, "k")
    assert logger.flush(1) is True and logger.stats.queued == 0
    assert {t.ident for t in threading.enumerate()} - before == set()
    logger.close()


def test_an_unreferenced_logger_is_collected_and_its_thread_ends():
    before = set(threading.enumerate())
    logger = EventLogger(f"http://127.0.0.1:{free_port()}", "k", exit_timeout=0.2, max_retry_backoff=0.05,
                         flush_interval=0.01)
    logger.log({"route": "r"})
    [thread] = [t for t in threading.enumerate() if t not in before and t.name == "llm-incident-events"]
    ref = weakref.ref(logger)
    del logger
    gc.collect()
    assert ref() is None
    thread.join(5)
    assert not thread.is_alive()


def test_importing_the_client_pulls_in_no_server_dependencies_and_starts_no_thread():
    code = (
        "import sys, threading\n"
        "n = threading.active_count()\n"
        "import llm_incident_client\n"
        "heavy = {'fastapi', 'starlette', 'sqlmodel', 'sqlalchemy', 'pydantic', 'uvicorn', 'slack_bolt',\n"
        "         'slack_sdk', 'alembic', 'apscheduler', 'genai_prices', 'opentelemetry', 'prometheus_client'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), threading.active_count() - n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "0"]
