"""Request limits through a real `llm-incident serve`: header and body read timeouts (raw sockets), the
per-key ingest rate limit (429 + Retry-After, honoured by the SDK) and the per-key long-poll cap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from llm_incident_client import Controls, EventLogger
from tests.serverprocess import ServerProcess, start_server
from tests.support import free_port

KEYS = ["limits-key-a-0123456789", "limits-key-b-0123456789", "limits-key-sdk-0123456789",
        "limits-key-poll-0123456789", "limits-key-poll2-0123456789", "limits-key-body-0123456789",
        "limits-key-ctl-0123456789"]
LIMITS = {"LLM_INCIDENT_HEADER_TIMEOUT_SECONDS": "1", "LLM_INCIDENT_BODY_TIMEOUT_SECONDS": "1",
          "LLM_INCIDENT_INGEST_RATE": "1", "LLM_INCIDENT_INGEST_BURST": "3",
          "LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY": "2", "LLM_INCIDENT_SCHEDULER": "false"}
EVENT = b'{"events": [{"route": "limits.route", "tokens_in": 1}]}'


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("limits")
    proc = start_server(workdir, f"sqlite:///{workdir / 'limits.db'}", free_port(), api_key=",".join(KEYS),
                        **LIMITS)
    yield proc
    proc.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; AssertionError if it keeps it open."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"connection still open after {within} s; got {data!r}") from None
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body) from a keep-alive connection."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_a_connection_that_sends_nothing_is_closed_with_408(server):
    with connect(server) as sock:
        start = time.monotonic()
        answer = read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.8 <= time.monotonic() - start < 4


def test_headers_trickled_past_the_header_timeout_get_408(server):
    with connect(server) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = threading.Event()

        def trickle() -> None:  # one header line every 0.2 s: never complete
            for n in range(40):
                if closed.wait(0.2):
                    return
                try:
                    sock.sendall(b"X-Slow-%d: 1\r\n" % n)
                except OSError:
                    return

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            answer = read_until_closed(sock, 5)
        finally:
            closed.set()
            sender.join(5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"not received in time" in answer
    assert time.monotonic() - start < 4


def test_a_body_shorter_than_its_content_length_gets_408(server):
    with connect(server) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEYS[5].encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n" + EVENT)
        answer = read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.8 <= time.monotonic() - start < 4
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200  # the server is fine


def test_requests_in_time_pass_and_keep_alive_rearms_the_deadline(server):
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.sendall(b"\r\n")
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the next request stalls half-way
        rest = read_until_closed(sock, 5)
    assert rest.startswith(b"HTTP/1.1 408 "), rest


def post_event(client: httpx.Client, key: str) -> httpx.Response:
    return client.post("/v1/events", content=EVENT, headers={**auth(key), "Content-Type": "application/json"})


def test_ingest_rate_limit_per_key_answers_429_with_retry_after(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        codes = [post_event(client, KEYS[0]).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        refused, refused_at = post_event(client, KEYS[0]), time.monotonic()
        assert refused.status_code == 429, refused.text
        assert "rate limit" in refused.json()["error"]
        retry_after = int(refused.headers["retry-after"])
        assert retry_after >= 1
        assert post_event(client, KEYS[1]).status_code == 200  # another key has its own bucket
        assert client.post("/v1/changes", json={"route": "limits.route", "kind": "deploy",
                                                "description": "x"}, headers=auth(KEYS[0])).status_code == 429
        assert client.post("/v1/traces", json={}, headers=auth(KEYS[0])).status_code == 429
        assert client.get("/v1/events", headers=auth(KEYS[0])).status_code == 200  # reads are not limited
        deadline = refused_at + retry_after + 5
        while (answer := post_event(client, KEYS[0])).status_code == 429:  # poll until a token is due
            assert time.monotonic() < deadline, "still refused long after Retry-After"
            time.sleep(0.05)
        assert answer.status_code == 200
        assert 0.5 <= time.monotonic() - refused_at <= retry_after + 1


def test_sdk_honours_retry_after_and_delivers_everything(server):
    logger = EventLogger(server.url, KEYS[2], batch_size=1, flush_interval=0.01, max_retry_backoff=0.05)
    start = time.monotonic()
    try:
        for n in range(6):
            logger.log({"event_id": f"limits-sdk-{n}", "route": "limits.sdk"})
        assert logger.flush(timeout=30)
    finally:
        logger.close(5)
    took, stats = time.monotonic() - start, logger.stats
    assert stats.sent == 6 and stats.rejected == 0
    assert stats.retries >= 1  # it was refused (3 a burst, then 1 a second) ...
    assert took >= 2  # ... and waited for the tokens ...
    assert stats.retries <= took + 2  # ... as Retry-After (1 s) said, not every 50 ms of its own backoff


class LongPoll(threading.Thread):
    def __init__(self, server: ServerProcess, key: str, path: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.path, self.tag = server.url, key, path, tag
        self.answer: httpx.Response | None = None
        self.took = 0.0

    def run(self) -> None:
        start = time.monotonic()
        self.answer = httpx.get(f"{self.url}{self.path}", timeout=30,
                                headers={**auth(self.key), "If-None-Match": self.tag})
        self.took = time.monotonic() - start


def test_long_polls_per_key_are_capped(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        tag = client.get("/v1/controls", headers=auth(KEYS[3])).headers["etag"]
        route_tag = client.get("/v1/routes/limits.route/controls", headers=auth(KEYS[3])).headers["etag"]
        polls = [LongPoll(server, KEYS[3], "/v1/controls?wait=3", tag),
                 LongPoll(server, KEYS[3], "/v1/controls?wait=3", tag),
                 LongPoll(server, KEYS[3], "/v1/routes/limits.route/controls?wait=3", route_tag),
                 LongPoll(server, KEYS[4], "/v1/controls?wait=3", tag)]
        for poll in polls:
            poll.start()
        for poll in polls:
            poll.join(20)
        assert all(poll.answer is not None for poll in polls)
        same_key = sorted(polls[:3], key=lambda poll: poll.answer.status_code)
        assert [poll.answer.status_code for poll in same_key] == [304, 304, 429]  # the cap is 2 per key
        refused = same_key[2]
        assert int(refused.answer.headers["retry-after"]) >= 1
        assert "long-polls" in refused.answer.json()["error"]
        assert refused.took < 2 and min(same_key[0].took, same_key[1].took) >= 2.5  # refused at once
        assert polls[3].answer.status_code == 304  # another key has its own slots
        assert client.get("/v1/controls", headers=auth(KEYS[3])).status_code == 200  # plain reads are fine
        again = client.get("/v1/controls?wait=0.2", headers={**auth(KEYS[3]), "If-None-Match": tag})
        assert again.status_code == 304  # the slots are free again


def test_controls_client_past_the_cap_keeps_its_values_and_honours_retry_after(server):
    """Three controls clients share a key capped at 2 long-polls: the one refused keeps serving the values it
    read and retries after Retry-After (1 s), not every 50 ms of its own backoff."""
    clients = [Controls(server.url, KEYS[6], wait=3, max_retry_backoff=0.05) for _ in range(3)]
    try:
        assert all(c.wait_ready(10) for c in clients)
        refused: list[Controls] = []
        deadline = time.monotonic() + 10
        while not refused:  # the third long-poll to arrive is refused
            refused = [c for c in clients if c.last_error and "429" in c.last_error]
            assert time.monotonic() < deadline, "no controls client was refused"
            time.sleep(0.02)
        start_log = server.output().count('" 429 ')
        start = time.monotonic()
        while time.monotonic() - start < 2.5:
            assert refused[0].guard("limits.route").allowed  # fail-open values, still served
            time.sleep(0.05)
        refusals = server.output().count('" 429 ') - start_log
    finally:
        for c in clients:
            c.close()
    assert 1 <= refusals <= 8  # about one a second per refused client; ignoring Retry-After: ~50
