"""`Controls` retry pacing (quick while the server is down, backoff while it answers errors) and the state
changes its listeners hear, driven by scripted answers."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from llm_incident_client import Controls, Decision
from llm_incident_client.controls import ControlsEvent
from llm_incident_client.transport import RECONNECT_DELAYS, reconnect_delay

ROUTE = "support.reply"
SLACK = 0.5  # scheduling latency on a busy machine, on top of a computed pause


def test_reconnect_delays_climb_the_ladder_to_the_cap_with_jitter():
    rng = random.Random(7)
    for cap in (1.0, 0.3, 2.0):
        for attempt in range(10):
            ceiling = min(cap, RECONNECT_DELAYS[attempt] if attempt < len(RECONNECT_DELAYS) else cap)
            delays = [reconnect_delay(attempt, cap=cap, rng=rng) for _ in range(200)]
            assert all(ceiling / 2 <= d <= ceiling for d in delays), (cap, attempt)
            assert max(delays) - min(delays) > ceiling / 4  # jittered, not in lockstep
    assert reconnect_delay(0, cap=1.0) >= 0.05  # never a busy loop


class Script:
    """Answers requests from a list (an exception is raised), then `rest`; records when each came."""

    def __init__(self, answers: list[httpx.Response | Exception], rest: Callable[[], httpx.Response]) -> None:
        self.answers, self.rest, self.times = list(answers), rest, []
        self.cond = threading.Condition()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.cond:
            self.times.append(time.monotonic())
            self.cond.notify_all()
            answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer if answer is not None else self.rest()

    def wait_for_requests(self, count: int, within: float) -> list[float]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.times) >= count, within), self.times
            return self.times[:count]


def loaded(version: int, enabled: bool = True) -> httpx.Response:
    return httpx.Response(200, json=[{"route": ROUTE, "env": "prod", "enabled": enabled, "version": version}],
                          headers={"ETag": f'"v{version}"'})


def down() -> httpx.ConnectError:
    return httpx.ConnectError("Connection refused")


def test_while_the_server_is_down_retries_follow_the_quick_ladder():
    answers: list[httpx.Response | Exception] = [down(), down(), down(), httpx.Response(502), down(),
                                                 httpx.Response(503), down()]
    script = Script(answers, lambda: loaded(1))
    with Controls("http://controls.test", "k", transport=httpx.MockTransport(script)) as controls:
        assert controls.wait_ready(sum(RECONNECT_DELAYS) + 3 * 1.0 + SLACK)
        times = script.wait_for_requests(len(answers) + 1, within=1)
    gaps = [b - a for a, b in zip(times, times[1:])]
    ceilings = [*RECONNECT_DELAYS, 1.0, 1.0, 1.0]
    for gap, ceiling in zip(gaps, ceilings):
        assert ceiling / 2 - 0.01 <= gap <= ceiling + SLACK, (gaps, ceilings)


def test_while_the_server_answers_errors_retries_back_off_exponentially():
    script = Script([httpx.Response(500), httpx.Response(500), httpx.Response(500)], lambda: loaded(1))
    with Controls("http://controls.test", "k", max_retry_backoff=4, transport=httpx.MockTransport(script)) as c:
        assert c.wait_ready(0.5 + 1 + 2 + SLACK * 3)
        times = script.wait_for_requests(4, within=1)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert [g >= low - 0.01 for g, low in zip(gaps, (0.25, 0.5, 1.0))] == [True] * 3, gaps  # 0.5·2^n, jittered


def test_retry_after_is_honoured_even_while_down():
    script = Script([httpx.Response(503, headers={"Retry-After": "1"})], lambda: loaded(1))
    with Controls("http://controls.test", "k", transport=httpx.MockTransport(script)) as controls:
        assert controls.wait_ready(1 + SLACK * 2)
        first, second = script.wait_for_requests(2, within=1)
    assert second - first >= 0.99


def test_listeners_hear_error_ready_changed_stale_ready():
    answers: list[httpx.Response | Exception] = [down(), loaded(1), loaded(2, enabled=False), down()]
    script = Script(answers, lambda: httpx.Response(304, headers={"ETag": '"v2"'}))
    heard: list[ControlsEvent] = []
    cond = threading.Condition()

    def listen(event: ControlsEvent) -> None:
        with cond:
            heard.append(event)
            cond.notify_all()

    def broken(_event: ControlsEvent) -> None:
        raise RuntimeError("a listener's own bug")

    controls = Controls("http://controls.test", "k", transport=httpx.MockTransport(script), start=False)
    controls.add_listener(broken)
    controls.add_listener(listen)
    controls.start()
    try:
        with cond:
            assert cond.wait_for(lambda: len(heard) >= 5, 5), heard
        kinds = [e.kind for e in heard]
        assert kinds[:5] == ["error", "ready", "changed", "stale", "ready"], kinds
        assert "Connection refused" in (heard[0].message or "") and heard[3].message == heard[0].message
        assert heard[2].changes == {ROUTE: (Decision(version=1), Decision(allowed=False, version=2))}
        controls.remove_listener(listen)
        controls.remove_listener(listen)  # a no-op the second time
    finally:
        controls.close()


@pytest.mark.parametrize("value", [0, 0.01, -1, float("nan")])
def test_a_reconnect_delay_that_would_spin_is_refused(value):
    with pytest.raises(ValueError, match="max_reconnect_delay"):
        Controls("http://x.test", "k", max_reconnect_delay=value, start=False)
