"""Slack Socket Mode on the `websockets` threaded client: make-before-break reconnects.

slack_sdk's built-in client reads every connection from one session thread, and closing the old
connection waits on a lock its blocking `recv` holds for up to its 3-second socket timeout, so
the first envelopes after a `disconnect` (refresh_requested) wait up to 3 s for their ack — the
length of Slack's whole ack budget. Here each connection has its own reader thread: a reconnect
opens the new connection and reads it at once, while the old one keeps delivering (and getting
acks) until Slack closes it or `drain_seconds` pass.

`SocketModeHandler(app, app_token)` is the slack_bolt adapter over it (same `connect`/`close`).
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Queue
from time import time
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk import WebClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

log = logging.getLogger(__name__)

MAX_ORIGINS = 10_000  # envelopes remembered for routing their ack (older ones ack on current)


class SocketModeClient(BaseSocketModeClient):
    """A slack_sdk Socket Mode client (listeners, message queue and `disconnect` handling from
    `BaseSocketModeClient`) whose connections are `websockets` ClientConnections.

    Each envelope is acked on the connection it came from while that one is open, else on the
    current one. A dropped connection is replaced within `retry_seconds` (doubling to 30 s
    while Slack cannot be reached).
    """

    def __init__(self, app_token: str, *, web_client: WebClient,
                 logger: logging.Logger | None = None, concurrency: int = 10,
                 ping_interval: float = 10, drain_seconds: float = 10,
                 retry_seconds: float = 1) -> None:
        self.app_token = app_token
        self.web_client = web_client
        self.logger = logger or log
        self.wss_uri = None  # type: ignore[assignment]
        self.message_queue = Queue()
        self.message_listeners = []
        self.socket_mode_request_listeners = []
        self.message_workers = ThreadPoolExecutor(max_workers=concurrency,
                                                  thread_name_prefix="slack-socket-work")
        self.closed = False
        self.connect_operation_lock = threading.Lock()
        self.ping_interval = ping_interval
        self.drain_seconds = drain_seconds
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a connection opened or ended
        self._stopping = threading.Event()
        self._current: ClientConnection | None = None
        self._open: set[ClientConnection] = set()
        self._origins: dict[str, ClientConnection] = {}
        self._wanted = threading.Event()  # wakes the keeper: the current connection is gone
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- BaseSocketModeClient ------------------------------------------------------------------

    def is_connected(self) -> bool:
        current = self._current
        return current is not None and current.state is State.OPEN

    def connect(self) -> None:
        """Open a new connection and read it, then retire the previous one (kept reading for
        `drain_seconds`, or until Slack closes it)."""
        if self.closed:
            return
        # A URL is good for one connection: use the one connect_to_new_endpoint just issued.
        uri, self.wss_uri = self.wss_uri or self.issue_new_wss_url(), None
        opened: Future[ClientConnection] = Future()
        self._spawn(self._run, uri, opened, name="slack-socket-read")
        ws = opened.result()  # the handshake's outcome (it times out by itself)
        with self._lock:
            previous, self._current = self._current, ws
        if self.closed:
            ws.close()
            return
        if not self._started:
            self._started = True
            self._spawn(self.process_messages, name="slack-socket-process")
            self._spawn(self._keep_connected, name="slack-socket-keeper")
        if previous is not None:
            self._spawn(self._retire, previous, name="slack-socket-drain")
        self.logger.info("Slack Socket Mode connection open (%d open)", len(self._open))

    def disconnect(self) -> None:
        with self._lock:
            connections = list(self._open)
        for ws in connections:
            ws.close()

    def send_message(self, message: str) -> None:
        self._send(self._current, message)

    def send_socket_mode_response(self, response: dict[str, Any] | SocketModeResponse) -> None:
        body = response.to_dict() if isinstance(response, SocketModeResponse) else response
        with self._lock:
            origin = self._origins.pop(str(body.get("envelope_id")), None)
        self._send(origin, json.dumps(body))

    def close(self) -> None:
        self.closed = True
        self._stopping.set()
        self._wanted.set()
        with self._changed:
            self._changed.notify_all()
        self.disconnect()
        self.message_queue.put(None)  # wakes the processor, which then sees `closed`
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.message_workers.shutdown(wait=True)

    # -- connections --------------------------------------------------------------------------

    def _send(self, preferred: ClientConnection | None, message: str) -> None:
        for ws in (preferred, self._current):
            if ws is None or ws.state is not State.OPEN:
                continue
            try:
                ws.send(message)
                return
            except (ConnectionClosed, WebSocketException, OSError):
                continue
        raise ConnectionError("no open Slack Socket Mode connection to send on")

    def _run(self, uri: str, opened: Future[ClientConnection]) -> None:
        """One connection's life on its own thread: open it, hand it over, read until it ends."""
        try:
            with connect(uri, ssl=self.web_client.ssl, proxy=self.web_client.proxy or True,
                         compression=None, open_timeout=10, ping_interval=self.ping_interval,
                         ping_timeout=self.ping_interval, close_timeout=2,
                         user_agent_header=None) as ws:
                with self._lock:
                    self._open.add(ws)
                opened.set_result(ws)
                self._read(ws)
        except Exception as exc:  # noqa: BLE001 - the handshake's failure goes to connect()
            if not opened.done():
                opened.set_exception(exc)

    def _read(self, ws: ClientConnection) -> None:
        try:
            for raw in ws:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
                self._remember_origin(text, ws)
                self.enqueue_message(text)
        except (ConnectionClosed, WebSocketException, OSError) as exc:
            self.logger.info("Slack Socket Mode connection ended (%s)", exc)
        finally:
            with self._changed:
                self._open.discard(ws)
                self._origins = {k: v for k, v in self._origins.items() if v is not ws}
                lost = ws is self._current
                self._changed.notify_all()
            if lost and not self.closed:
                self._wanted.set()

    def _remember_origin(self, text: str, ws: ClientConnection) -> None:
        if '"envelope_id"' not in text:
            return
        try:
            envelope_id = json.loads(text).get("envelope_id")
        except (ValueError, AttributeError):
            return
        if envelope_id:
            with self._lock:
                if len(self._origins) >= MAX_ORIGINS:
                    self._origins.pop(next(iter(self._origins)))
                self._origins[str(envelope_id)] = ws

    def _retire(self, ws: ClientConnection) -> None:
        """Let the replaced connection deliver what Slack already sent on it, then close it."""
        with self._changed:
            self._changed.wait_for(lambda: ws not in self._open or self.closed,
                                   timeout=self.drain_seconds)
        ws.close()

    def _keep_connected(self) -> None:
        delay = self.retry_seconds
        while not self.closed:
            self._wanted.wait(timeout=self.ping_interval)
            self._wanted.clear()
            if self.closed or self.is_connected():
                delay = self.retry_seconds
                continue
            try:
                self.connect_to_new_endpoint()
            except Exception as exc:  # noqa: BLE001 - keep trying; say why
                self.logger.error("Slack Socket Mode reconnect failed (%s); retrying in %.0f s",
                                  exc, delay)
                self._wanted.set()
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()


class SocketModeHandler(BaseSocketModeHandler):
    """slack_bolt's Socket Mode adapter over `SocketModeClient` (`connect()`, `close()`)."""

    def __init__(self, app: App, app_token: str, **client_options: Any) -> None:
        self.app = app
        self.client = SocketModeClient(app_token, web_client=app.client, logger=app.logger,
                                       **client_options)
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        start = time()
        send_response(client, req, run_bolt_app(self.app, req), start)
