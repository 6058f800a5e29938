"""What a `Controls` tells the control plane about itself with each request (proof of application), and that
after an outage it asks without waiting, so it is back (not stale) within one round trip."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs

import httpx

from llm_incident_client import Controls, __version__
from llm_incident_client.instance import HEADER

ROUTE = "support.reply"


class Recorder:
    """Answers from a script (then 304s after a short hold), keeping every request."""

    def __init__(self, answers: list) -> None:
        self.answers, self.requests = list(answers), []
        self.cond = threading.Condition()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.cond:
            self.requests.append(request)
            self.cond.notify_all()
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            threading.Event().wait(0.05)  # a short long-poll
            return httpx.Response(304, headers={"ETag": '"v2"'})
        return answer

    def wait(self, count: int) -> list[httpx.Request]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= count, 5), self.requests
            return list(self.requests)


def controls_list(version: int, enabled: bool = True) -> httpx.Response:
    return httpx.Response(200, headers={"ETag": f'"v{version}"'},
                          json=[{"route": ROUTE, "env": "prod", "enabled": enabled, "version": version}])


def report(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.headers[HEADER])


def test_each_request_reports_the_instance_its_routes_and_the_version_applied():
    script = Recorder([controls_list(1), controls_list(2, enabled=False)])
    with Controls("http://controls.test", "k", wait=3, routes=[ROUTE], instance_name="web-7",
                  transport=httpx.MockTransport(script)) as controls:
        first, second, third = script.wait(3)[:3]
        controls.guard("search.answer")  # not watched: guarded, reported from the next request on
        sent = len(script.requests)
        last = script.wait(sent + 1)[-1]
        instance = controls.instance_id
    before = report(first)
    assert before["id"] == [instance] and before["name"] == ["web-7"] and before["version"] == [__version__]
    assert before["wait"] == ["3"] and before["route"] == [ROUTE] and "applied" not in before
    [applied] = report(second)["applied"]
    assert applied.startswith(f"{ROUTE}@1@")
    after = report(third)
    [applied] = [a for a in after["applied"] if a.startswith(ROUTE + "@")]
    assert applied.startswith(f"{ROUTE}@2@") and float(applied.rsplit("@", 1)[1]) < 5
    assert "search.answer" not in after["route"]
    assert report(last)["route"] == ["search.answer", ROUTE]


def test_after_an_outage_the_first_request_does_not_wait_so_the_client_is_back_at_once():
    script = Recorder([controls_list(1), httpx.ConnectError("Connection refused")])
    with Controls("http://controls.test", "k", wait=25, transport=httpx.MockTransport(script)) as controls:
        requests = script.wait(3)
        assert controls.wait_ready(1)
    assert "wait" not in requests[0].url.params  # the first load
    assert requests[1].url.params["wait"] == "25"  # a long-poll, refused: the server is down
    again = requests[2]
    assert "wait" not in again.url.params and again.headers["If-None-Match"] == '"v1"'
