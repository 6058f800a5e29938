"""Stopping `llm-incident serve` while clients long-poll the controls: they get a clean answer, it exits fast."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from llm_incident.db import Database
from tests.serverprocess import start_server
from tests.support import TEST_KEY, free_port, waiting_on_server

ROUTE = "support.reply"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


class LongPoll(threading.Thread):
    """GET `path` with the given headers in a thread; `sent` is set once the request is on the wire."""

    def __init__(self, url: str, path: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.headers = url, path, headers
        self.sent = threading.Event()
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def _trace(self, name: str, _info: dict) -> None:
        if name == "http11.send_request_body.complete":
            self.sent.set()

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as http:
                request = http.build_request("GET", self.url + self.path, headers={**AUTH, **self.headers},
                                             extensions={"trace": self._trace})
                self.response = http.send(request)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.sent.set()


def stop_while_long_polling(tmp_path: Path, database_url: str, sig: int) -> None:
    server = start_server(tmp_path, database_url, free_port(), api_key=TEST_KEY)
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as api:
            api.put(f"/v1/routes/{ROUTE}/controls", json={"max_tokens": 256}).raise_for_status()
            all_tag = api.get("/v1/controls").headers["etag"]
            one_tag = api.get(f"/v1/routes/{ROUTE}/controls").headers["etag"]
        polls = [LongPoll(server.url, "/v1/controls?wait=25", {"If-None-Match": all_tag}),
                 LongPoll(server.url, f"/v1/routes/{ROUTE}/controls?wait=25", {"If-None-Match": one_tag}),
                 LongPoll(server.url, f"/v1/routes/{ROUTE}/controls?wait=25&version=1", {})]
        for poll in polls:
            poll.start()
        for poll in polls:
            assert poll.sent.wait(10), "long-poll not sent"
        waiting_on_server(server.url, len(polls))  # sent is not yet read: a stop then may reset it
        took = server.stop(sig)
        for poll in polls:
            poll.join(10)
            assert poll.error is None, poll.error
            assert poll.response is not None and poll.response.status_code == 304, poll.response
        assert [p.response.headers["etag"] for p in polls] == [all_tag, one_tag, one_tag]
        log = server.output()
        assert "Traceback" not in log and "Cancel" not in log and "ERROR" not in log, log[-3000:]
        assert took < 2.0, f"the server took {took:.2f} s to stop:\n{log[-2000:]}"
    finally:
        server.stop(signal.SIGKILL)


@pytest.mark.timeout(90)
def test_sigterm_answers_waiting_long_polls_and_stops_within_2_s(tmp_path, db: Database):
    stop_while_long_polling(tmp_path, db.url, signal.SIGTERM)


@pytest.mark.timeout(90)
def test_ctrl_c_does_the_same(tmp_path, sqlite_db: Database):
    stop_while_long_polling(tmp_path, sqlite_db.url, signal.SIGINT)
