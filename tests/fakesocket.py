"""A local fake of Slack's Socket Mode websocket endpoint, recording every ack and its latency.

    with FakeSlack() as slack, FakeSocketMode() as socket:
        slack.socket_url = socket.url           # apps.connections.open hands it out
        ...                                     # start the app with SLACK_APP_TOKEN
        socket.wait_connections(1)
        envelope_id = socket.send("slash_commands", {...}, accepts_response_payload=True)
        ack = socket.ack(envelope_id)           # {"envelope_id": ..., "payload": ...?}
        socket.disconnect()                     # {"type": "disconnect", "reason": "refresh_requested"}
        socket.wait_connections(2)

Like Slack, each new connection is greeted with a `hello`; envelopes go to the newest
connection unless told otherwise; an ack is a JSON message echoing the `envelope_id`. Latency is
measured here, from just before the envelope is written to the moment its ack is read.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.server import ServerConnection, serve


@dataclass
class Ack:
    """The client's answer to one envelope, and on which connection it came."""

    message: dict[str, Any]
    connection: int
    at: float

    @property
    def payload(self) -> dict[str, Any] | None:
        return self.message.get("payload")


class FakeSocketMode:
    """The fake websocket server; thread-safe; use as a context manager."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._connections: list[ServerConnection] = []
        self._sent: dict[str, float] = {}
        self._acks: dict[str, Ack] = {}
        self._ended: set[int] = set()  # connection numbers whose handler has finished
        self._strays: list[str] = []  # messages that were not acks of a sent envelope
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None,
                             ping_interval=None)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-socket-mode")

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    # -- Slack's side of the protocol ---------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False,
             connection: int | None = None, **extra: Any) -> str:
        """Send an envelope of `kind` (slash_commands, interactive, events_api) carrying
        `payload` to connection number `connection` (default: the newest); its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": accepts_response_payload, **extra}
        if kind == "events_api":
            envelope.setdefault("retry_attempt", 0)
            envelope.setdefault("retry_reason", "")
        ws = self._connection(connection)
        data = json.dumps(envelope)
        with self._cond:
            self._sent[envelope_id] = time.monotonic()
        ws.send(data)
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested", connection: int | None = None) -> int:
        """Ask the client to reconnect, as Slack does before recycling a connection (the old
        connection stays open until `close` is called); the number of the connection asked."""
        number = connection or self.connection_count()
        self._connection(number).send(json.dumps(
            {"type": "disconnect", "reason": reason,
             "debug_info": {"host": "applink-fake-1"}}))
        return number

    def close(self, connection: int) -> None:
        """Close connection number `connection` from the server side."""
        self._connection(connection).close()

    # -- inspection ---------------------------------------------------------------------------

    def connection_count(self) -> int:
        with self._cond:
            return len(self._connections)

    def wait_connections(self, count: int, timeout: float = 15.0) -> None:
        """Wait until `count` connections have been opened (in all, since the start)."""
        self._wait(lambda: len(self._connections) >= count, timeout,
                   f"{count} websocket connections")

    def is_open(self, connection: int) -> bool:
        return self._connection(connection).state is State.OPEN

    def wait_closed(self, connection: int, timeout: float = 10.0) -> None:
        """Wait until connection number `connection` is closed (by either side)."""
        self._wait(lambda: connection in self._ended, timeout,
                   f"connection {connection} to close")

    def ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The ack of `envelope_id`, waiting for it."""
        return self._wait(lambda: self._acks.get(envelope_id), timeout,
                          f"the ack of envelope {envelope_id}")

    def latency(self, envelope_id: str, timeout: float = 10.0) -> float:
        """Seconds from sending `envelope_id` to reading its ack."""
        ack = self.ack(envelope_id, timeout)
        return ack.at - self._sent[envelope_id]

    def strays(self) -> list[str]:
        """Messages from the client that acknowledge no envelope we sent."""
        with self._cond:
            return list(self._strays)

    # -- server -------------------------------------------------------------------------------

    def _connection(self, number: int | None) -> ServerConnection:
        with self._cond:
            if not self._connections:
                raise AssertionError("no Socket Mode connection is open")
            return self._connections[(number or len(self._connections)) - 1]

    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        with self._cond:
            value = self._cond.wait_for(predicate, timeout)
        if not value:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} "
                                 f"({self.connection_count()} connections)")
        return value

    def _handle(self, ws: ServerConnection) -> None:
        with self._cond:
            self._connections.append(ws)
            number = len(self._connections)
            self._cond.notify_all()
        ws.send(json.dumps({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "applink-fake-1", "build_number": 1,
                                           "approximate_connection_time": 18060},
                            "connection_info": {"app_id": "A0001"}}))
        try:
            for raw in ws:
                at = time.monotonic()
                self._record(raw, number, at)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._ended.add(number)
                self._cond.notify_all()

    def _record(self, raw: str | bytes, number: int, at: float) -> None:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        try:
            message = json.loads(text)
        except ValueError:
            message = {}
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        with self._cond:
            if envelope_id in self._sent and envelope_id not in self._acks:
                self._acks[envelope_id] = Ack(message=message, connection=number, at=at)
            else:
                self._strays.append(text)
            self._cond.notify_all()
