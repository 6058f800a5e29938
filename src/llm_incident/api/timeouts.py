"""Header and body read timeouts for uvicorn's h11 server.

uvicorn bounds idle keep-alive connections but not a request in progress: a client that sends its headers
one byte at a time, or declares a Content-Length larger than the body it sends, holds a connection (and a
request task) for ever. `timed_h11(header_timeout, body_timeout)` is an `H11Protocol` subclass that answers
408 and closes the connection when the request line and headers are not complete within `header_timeout`
seconds of the connection opening (or of the first byte of the next keep-alive request), or the body within
`body_timeout` seconds of the headers. Pass it to uvicorn as `http=`.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMEOUT_BODY = b'{"error":"request timeout: the request was not received in time"}'
RESPONSE_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class TimedH11Protocol(H11Protocol):
    """`H11Protocol` with a deadline for the headers and one for the body of each request."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading: str | None = None
        super().connection_made(transport)
        self._arm("headers", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading is None and self.conn.their_state is h11.IDLE:
            self._arm("headers", self.header_timeout)  # the first bytes of the next keep-alive request
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._reading is None and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("headers", self.header_timeout)  # part of a pipelined request is already here
        self._track()

    def _track(self) -> None:
        """Move the deadline along with what h11 has parsed so far."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._reading != "body":
                self._arm("body", self.body_timeout)
        elif state is not h11.IDLE or self._reading == "body":
            self._disarm()  # headers and body are in (or the connection is done with)

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._reading = what
        self._read_timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer, self._reading = None, None

    def _expired(self) -> None:
        what, self._read_timer, self._reading = self._reading, None, None
        if self.transport.is_closing():
            return
        self.logger.warning("closing a connection from %s: request %s not received in time",
                            "%s:%d" % self.client if self.client else "?", what)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(RESPONSE_408)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() now says http.disconnect; its sends are dropped
            cycle.message_event.set()
        self.transport.close()


def timed_h11(header_timeout: float, body_timeout: float) -> type[TimedH11Protocol]:
    """A `TimedH11Protocol` class with these deadlines (uvicorn instantiates the class itself)."""
    return type("TimedH11Protocol", (TimedH11Protocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
