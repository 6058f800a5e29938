"""`Controls` against the running server: quick flips, last known good through an outage, fail-open, apply()."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

import httpx
import pytest

from llm_incident_client import Controls, Decision
from llm_incident.controls.service import change_controls
from tests.support import TEST_KEY, free_port, live_server

ROUTE = "support.reply"
WAIT = 2  # short long-polls: the server lets an in-flight one finish before it stops


def eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until `check()` held; fails after `within`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            pytest.fail(f"condition not met within {within} s")
        time.sleep(0.005)
    return time.monotonic() - start


def put(api: httpx.Client, payload: dict, route: str = ROUTE) -> dict:
    response = api.put(f"/v1/routes/{route}/controls", json=payload)
    assert response.status_code == 200, response.text
    return response.json()["controls"]


def test_the_client_sees_a_flip_within_a_fraction_of_a_second(server, api):
    with Controls(server, TEST_KEY, wait=WAIT) as controls:
        assert controls.wait_ready(5)
        assert controls.guard(ROUTE) == Decision(allowed=True, version=0)
        put(api, {"enabled": False, "fallback_message": "Back soon."})
        took = eventually(lambda: not controls.guard(ROUTE).allowed)
        assert took < 1.0, took
        decision = controls.guard(ROUTE)
        assert (decision.fallback_message, decision.version) == ("Back soon.", 1)
        put(api, {"enabled": True, "max_tokens": 256, "model": "small", "provider": "p2", "retry_cap": 1})
        eventually(lambda: controls.guard(ROUTE).version == 2, within=1.0)
        assert controls.guard(ROUTE) == Decision(allowed=True, fallback_message="Back soon.", max_tokens=256,
                                                 model="small", provider="p2", retry_cap=1, version=2)


def test_last_known_values_survive_an_outage_and_a_change_is_seen_after_it(app, db):
    port = free_port()
    with live_server(app, port=port) as url:
        controls = Controls(url, TEST_KEY, wait=1, max_retry_backoff=0.2)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as api:
            put(api, {"enabled": False, "max_tokens": 100})
        eventually(lambda: controls.guard(ROUTE).version == 1)
    try:
        eventually(lambda: controls.stale, within=10)  # the server is gone
        assert "cannot reach" in (controls.last_error or "")
        for _ in range(20):  # still the last known good values, not the fail-open default
            assert controls.guard(ROUTE) == Decision(allowed=False, max_tokens=100, version=1)
            time.sleep(0.02)
        with db.write() as session:  # changed while the client cannot see it
            change_controls(session, ROUTE, "prod", {"enabled": True}, actor="U1",
                            now=datetime.now(timezone.utc))
        with live_server(app, port=port):
            took = eventually(lambda: controls.guard(ROUTE).allowed, within=5)
            assert controls.guard(ROUTE).version == 2 and not controls.stale
        assert took < 5
    finally:
        controls.close()


def test_routes_never_fetched_fail_open_by_default_and_closed_when_asked():
    dead = f"http://127.0.0.1:{free_port()}"
    with Controls(dead, "k", max_retry_backoff=0.1) as open_, \
            Controls(dead, "k", fail_open=False, fallback_message="Unavailable.", max_retry_backoff=0.1) as closed:
        assert not open_.wait_ready(0.3) and not closed.ready
        assert open_.guard(ROUTE) == Decision(allowed=True, version=None)
        assert closed.guard(ROUTE) == Decision(allowed=False, fallback_message="Unavailable.", version=None)
        eventually(lambda: open_.stale and closed.stale)


def test_after_a_full_load_an_unlisted_route_has_no_controls_even_when_failing_closed(server, api):
    put(api, {"enabled": False}, route="watched.route")
    with Controls(server, TEST_KEY, fail_open=False, wait=WAIT) as everything, \
            Controls(server, TEST_KEY, fail_open=False, routes=["watched.route"], wait=WAIT) as some:
        assert everything.wait_ready(5) and some.wait_ready(5)
        assert everything.guard("brand.new").allowed and everything.guard("brand.new").version == 0
        assert not some.guard("watched.route").allowed
        assert some.guard("brand.new") == Decision(allowed=False, version=None)  # outside routes=: never fetched


def test_guard_never_raises(server):
    with Controls(server, TEST_KEY, wait=WAIT) as controls:
        controls.wait_ready(5)
        assert controls.guard(["not", "hashable"]).allowed  # type: ignore[arg-type]
        assert controls.guard(None).allowed  # type: ignore[arg-type]


def test_bad_answers_keep_the_last_good_values():
    answers = iter([
        httpx.Response(200, json=[{"route": ROUTE, "env": "prod", "enabled": False, "version": 3}],
                       headers={"ETag": '"a"'}),
        httpx.Response(200, content=b"not json", headers={"ETag": '"b"'}),
        httpx.Response(200, json={"not": "a list"}, headers={"ETag": '"c"'}),
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(200, json=[{"route": ROUTE, "enabled": "yes", "version": 4},
                                  {"route": "other", "enabled": False, "version": 1}], headers={"ETag": '"d"'}),
    ])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers, None) or httpx.Response(304, headers={"ETag": '"d"'})

    with Controls("http://controls.test", "k", transport=httpx.MockTransport(handler),
                  max_retry_backoff=0.01) as controls:
        eventually(lambda: controls.guard("other").version == 1)
        assert controls.guard(ROUTE).allowed  # malformed entry skipped; absent from a full load → allowed
        assert seen[0].url.params.get("wait") is None and seen[1].url.params["wait"] == "25.0"
        assert seen[1].headers["if-none-match"] == '"a"'
        assert seen[0].headers["authorization"] == "Bearer k" and seen[0].url.params["env"] == "prod"


def test_an_unreferenced_client_stops_its_thread():
    before = set(threading.enumerate())
    controls = Controls(f"http://127.0.0.1:{free_port()}", "k", max_retry_backoff=0.05)
    [thread] = [t for t in threading.enumerate() if t not in before and t.name == "llm-incident-controls"]
    del controls
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_bad_arguments_fail_at_construction():
    for kwargs in ({"wait": 0}, {"wait": 31}, {"env": ""}, {"routes": []}, {"timeout": 0}):
        with pytest.raises(ValueError):
            Controls("http://x.test", "k", start=False, **kwargs)
    with pytest.raises(ValueError):
        Controls("ftp://x.test", "k", start=False)
    with pytest.raises(ValueError):
        Controls("http://x.test", "", start=False)


@pytest.mark.parametrize("kwargs, expected", [
    ({"model": "big", "messages": []}, {"model": "small", "messages": [], "max_tokens": 256}),
    ({"model": "big", "max_tokens": 1000}, {"model": "small", "max_tokens": 256}),
    ({"model": "big", "max_tokens": 100}, {"model": "small", "max_tokens": 100}),
    ({"max_completion_tokens": 4000}, {"model": "small", "max_completion_tokens": 256}),
    ({"max_output_tokens": None}, {"model": "small", "max_output_tokens": 256}),
    ({"max_tokens": "lots"}, {"model": "small", "max_tokens": 256}),
])
def test_apply_clamps_tokens_and_overrides_the_model(kwargs, expected):
    decision = Decision(max_tokens=256, model="small", provider="p2", retry_cap=1, version=3)
    original = json.dumps(kwargs)
    assert decision.apply(kwargs) == expected
    assert json.dumps(kwargs) == original  # the caller's dict is not modified


def test_apply_without_overrides_and_on_nonsense_never_raises():
    assert Decision(version=0).apply({"model": "m", "max_tokens": 9}) == {"model": "m", "max_tokens": 9}
    assert Decision(max_tokens=5).apply(None) == {}  # type: ignore[arg-type]
    assert Decision(max_tokens=5).apply([("max_tokens", 50)]) == {"max_tokens": 5}  # type: ignore[arg-type]
