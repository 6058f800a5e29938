"""Turn a signed `POST /slack/events` body into the Bolt request, parsed by us, not by Bolt.

slack-bolt's own `parse_body` treats any form body containing the substring "payload" as an
interactivity payload: a slash command whose text, channel, user or team name holds that word
would reach Bolt as `{}` (404 "unhandled request"). Here the form is parsed once, by its keys:
interactivity is the form with a `payload` field (JSON); a form with `command` is a slash command;
JSON bodies are Events API callbacks. The raw text is kept for Bolt's signature check.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import BoltRequest
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context


class BadSlackBody(ValueError):
    """The body is neither a Slack form nor a JSON object; the message says which part failed."""


def parse_slack_body(text: str, content_type: str | None) -> dict[str, Any]:
    """The request's fields: a JSON object (events), the interactivity payload, or the form."""
    if not text:
        return {}
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json" or text.lstrip().startswith("{"):
        return _json_object(text, "body")
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form and "command" not in form:  # a slash command form never has one
        return _json_object(form["payload"], "payload field")
    return form


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadSlackBody(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadSlackBody(f"the {what} is not a JSON object")
    return value


class ParsedBoltRequest(BoltRequest):
    """An HTTP-mode BoltRequest whose body was parsed by `parse_slack_body`.

    `raw_body` stays the signed text (Bolt verifies it); copies made for lazy listeners keep
    our parse instead of re-running Bolt's.
    """

    def __init__(self, *, raw_body: str, body: dict[str, Any], query: Any, headers: Any,
                 context: dict[str, Any] | None = None) -> None:
        super().__init__(body="", query=query, headers=headers, context=context)
        self.raw_body = raw_body
        self.body = body
        self.context = build_context(BoltContext(context or {}), body)

    def to_copyable(self) -> ParsedBoltRequest:
        return ParsedBoltRequest(raw_body=self.raw_body, body=self.body, query=self.query,
                                 headers=self.headers, context=self.context.to_copyable())


def parse_request(text: str, *, query: str, headers: dict[str, str]) -> ParsedBoltRequest:
    """The request Bolt dispatches; `BadSlackBody` when the body cannot be a Slack request."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    return ParsedBoltRequest(raw_body=text, body=parse_slack_body(text, content_type),
                             query=query, headers=headers)
