"""Slack-signed requests to our server: slash commands, block actions, view submissions, events.

Payloads follow the shapes Slack sends (form-encoded commands, `payload=` JSON for
interactivity, JSON for the Events API) and are signed like Slack does: `v0=` HMAC-SHA256 of
`v0:{timestamp}:{raw body}` with the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

SECRET = "test-signing-secret-8f14e45fceea167a"
BOT_TOKEN = "xoxb-test-0000-token"
TEAM = {"id": "T0001", "domain": "acme"}
_ids = itertools.count(1)


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def trigger_id() -> str:
    n = next(_ids)
    return f"{1_000_000 + n}.{2_000_000 + n}.{n:032x}"


class SlackSender:
    """Sends signed Slack requests to `base_url`/slack/events and returns the HTTP response."""

    def __init__(self, base_url: str, fake_url: str, secret: str = SECRET) -> None:
        self.url = f"{base_url}/slack/events"
        self.fake_url = fake_url
        self.secret = secret
        self.http = httpx.Client(timeout=30)

    def close(self) -> None:
        self.http.close()

    def send(self, body: str, content_type: str, *, headers: dict[str, str] | None = None,
             timestamp: int | None = None, signed: bool = True) -> httpx.Response:
        all_headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0"}
        if signed:
            all_headers.update(sign(body, self.secret, timestamp))
        all_headers.update(headers or {})
        return self.http.post(self.url, content=body.encode("utf-8"), headers=all_headers)

    # -- slash commands -----------------------------------------------------------------------

    def command_body(self, text: str, *, user: str = "U0ALICE", channel: str = "C0WAR",
                     response: str | None = None, trigger: str | None = None,
                     command: str = "/llm-incident", channel_name: str = "war-room",
                     user_name: str | None = None, team_domain: str = TEAM["domain"]) -> str:
        n = next(_ids)
        return urlencode({
            "token": "deprecated-verification-token", "team_id": TEAM["id"],
            "team_domain": team_domain, "channel_id": channel, "channel_name": channel_name,
            "user_id": user, "user_name": user.lower() if user_name is None else user_name,
            "command": command, "text": text,
            "api_app_id": "A0001", "is_enterprise_install": "false",
            "response_url": self.fake_url + f"/response/{response or f'cmd{n}'}",
            "trigger_id": trigger or trigger_id(),
        })

    def command(self, text: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", None)
        return self.send(self.command_body(text, **kwargs), "application/x-www-form-urlencoded",
                         headers=headers)

    # -- interactivity ------------------------------------------------------------------------

    def interactive(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return self.send(body, "application/x-www-form-urlencoded", **kwargs)

    def button_payload(self, element: dict[str, Any], *, message: dict[str, Any],
                       channel: str = "C0WAR", user: str = "U0ALICE",
                       response: str = "button") -> dict[str, Any]:
        """A block_actions payload for pressing `element` (a button from a posted message)."""
        return {
            "type": "block_actions", "api_app_id": "A0001", "token": "deprecated",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
            "team": TEAM, "trigger_id": trigger_id(),
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                          "is_ephemeral": False, **({"thread_ts": message["thread_ts"]}
                                                    if message.get("thread_ts") else {})},
            "channel": {"id": channel, "name": "war-room"},
            "message": message,
            "response_url": self.fake_url + f"/response/{response}",
            "actions": [{"type": "button", "action_id": element["action_id"],
                         "block_id": "b1", "text": element["text"],
                         "value": element.get("value", ""), "action_ts": f"{time.time():.6f}"}],
            "state": {"values": {}},
        }

    def shortcut_payload(self, text: str, *, channel: str = "C0WAR", user_name: str = "alice",
                         channel_name: str = "war-room", response: str = "shortcut",
                         team: dict[str, Any] | None = None) -> dict[str, Any]:
        """The "Attach to incident" message shortcut pressed on a message saying `text`."""
        message = {"type": "message", "user": "U0CUSTOMER", "ts": "1700000000.000100",
                   "text": text}
        return {
            "type": "message_action", "callback_id": "attach_to_incident", "token": "x",
            "team": team or TEAM, "user": {"id": "U0ALICE", "name": user_name},
            "channel": {"id": channel, "name": channel_name}, "message": message,
            "trigger_id": trigger_id(), "response_url": self.fake_url + f"/response/{response}",
            "message_ts": message["ts"], "action_ts": "1700000001.0"}

    def submission_payload(self, view: dict[str, Any], values: dict[str, Any], *,
                           user: str = "U0ALICE") -> dict[str, Any]:
        """A view_submission for `view` (as our app opened it) filled with `values`."""
        return {
            "type": "view_submission", "api_app_id": "A0001", "token": "deprecated",
            "team": TEAM, "user": {"id": user, "username": user.lower(), "team_id": TEAM["id"]},
            "trigger_id": trigger_id(),
            "view": {**view, "team_id": TEAM["id"], "state": {"values": state_for(view, values)},
                     "hash": "1712.abc", "app_id": "A0001", "bot_id": "B0001"},
            "response_urls": [],
        }

    # -- events -------------------------------------------------------------------------------

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> str:
        return json.dumps({
            "token": "deprecated", "team_id": TEAM["id"], "api_app_id": "A0001",
            "event": event, "type": "event_callback",
            "event_id": event_id or f"Ev{next(_ids):010d}", "event_time": int(time.time()),
        })

    def event(self, event: dict[str, Any], **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", None)
        return self.send(self.event_body(event, **kwargs), "application/json", headers=headers)


def state_for(view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`view.state.values` as Slack builds it from what the user entered in each input."""
    state: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        kind, action = element["type"], element["action_id"]
        value = values.get(block["block_id"])
        if kind == "plain_text_input":
            entry: dict[str, Any] = {"type": kind, "value": value or None}
        elif kind == "static_select":
            option = next((o for o in element["options"] if o["value"] == value), None)
            entry = {"type": kind, "selected_option": option}
        elif kind == "multi_static_select":
            entry = {"type": kind, "selected_options": [
                o for o in element["options"] if o["value"] in (value or [])]}
        elif kind == "conversations_select":
            entry = {"type": kind, "selected_conversation": value}
        else:
            raise AssertionError(f"no state builder for {kind}")
        state[block["block_id"]] = {action: entry}
    return state
