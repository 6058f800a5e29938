"""The real server in Socket Mode against the fake Slack Web API and the fake websocket endpoint.

`socket_server(db, slack, socket)` is `slack_server` with an app token and no signing secret;
`SocketSender` sends Slack's payloads (the same shapes as over HTTP) as Socket Mode envelopes
and returns each envelope's ack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from llm_incident.db import Database
from tests.e2e.slackenv import SlackEnv, slack_server
from tests.fakeslack import FakeSlack
from tests.fakesocket import Ack, FakeSocketMode
from tests.slackpayloads import SlackSender

APP_TOKEN = "xapp-1-A0001-0000-test"
RESPONSE_PAYLOAD_TYPES = ("view_submission", "block_suggestion")  # may answer in the ack


class SocketSender:
    """Slack's payloads as Socket Mode envelopes on `socket`; `http` gives the payload shapes."""

    def __init__(self, socket: FakeSocketMode, http: SlackSender) -> None:
        self.socket = socket
        self.http = http

    def command_envelope(self, text: str, *, connection: int | None = None,
                         **kwargs: Any) -> str:
        """Send `/llm-incident text` (kwargs as `SlackSender.command_body`) on connection
        number `connection` (default: the newest); its envelope_id."""
        payload = dict(parse_qsl(self.http.command_body(text, **kwargs), keep_blank_values=True))
        return self.socket.send("slash_commands", payload, accepts_response_payload=True,
                                connection=connection)

    def interactive_envelope(self, payload: dict[str, Any]) -> str:
        return self.socket.send("interactive", payload, accepts_response_payload=payload.get(
            "type") in RESPONSE_PAYLOAD_TYPES)

    def event_envelope(self, event: dict[str, Any], *, retry_attempt: int = 0,
                       **kwargs: Any) -> str:
        """An Events API envelope; `retry_attempt` > 0 makes it one of Slack's retries."""
        return self.socket.send("events_api", json.loads(self.http.event_body(event, **kwargs)),
                                retry_attempt=retry_attempt,
                                retry_reason="timeout" if retry_attempt else "")

    def command(self, text: str, **kwargs: Any) -> Ack:
        return self.socket.ack(self.command_envelope(text, **kwargs))

    def interactive(self, payload: dict[str, Any]) -> Ack:
        return self.socket.ack(self.interactive_envelope(payload))

    def event(self, event: dict[str, Any], **kwargs: Any) -> Ack:
        return self.socket.ack(self.event_envelope(event, **kwargs))


@contextmanager
def socket_server(db: Database, slack: FakeSlack, socket: FakeSocketMode,
                  **overrides: Any) -> Iterator[tuple[SlackEnv, SocketSender]]:
    """create_app in Socket Mode (SLACK_APP_TOKEN, no signing secret), connected to `socket`
    through the fake's apps.connections.open; yields once the first connection is open."""
    slack.socket_url = socket.url
    values: dict[str, Any] = {"slack_app_token": APP_TOKEN, "slack_signing_secret": None}
    values.update(overrides)
    with slack_server(db, slack, **values) as env:
        socket.wait_connections(1)
        yield env, SocketSender(socket, env.sender)
