"""Bolt listeners → the command core. Every listener acks first, then works in the background.

`register(app, handlers)` wires commands, actions, views, shortcuts and events onto an `App`
built by `slack.app.build_bolt_app`; nothing here is registered at import.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient
from sqlmodel import Session

from llm_incident.commands.core import CommandCore, Context
from llm_incident.commands.replies import Outcome, Reply
from llm_incident.db import Database
from llm_incident.incidents import service as incidents
from llm_incident.slack import blocks
from llm_incident.slack.answers import Answer, decode_metadata
from llm_incident.slack.dedupe import first_time, request_key
from llm_incident.slack.home import home_view, mitigations_by_route

log = logging.getLogger(__name__)

COMMAND = re.compile(r"^/llm-incident")  # also /llm-incident-staging and the like
RUN_ACTION = re.compile(rf"^{re.escape(blocks.RUN_ACTION)}\.\d+$")
MODAL = re.compile(rf"^{re.escape(blocks.MODAL_CALLBACK)}\.")
ATTACH_SHORTCUT = "attach_to_incident"
Mitigations = Callable[[Session], Mapping[str, Sequence[str]]]


class Handlers:
    """The listeners' work: dedupe, run the core, answer. Heavy work goes to `executor`."""

    def __init__(self, core: CommandCore, db: Database, *, executor: Executor,
                 clock: Callable[[], datetime], incident_channel: str | None = None,
                 mitigations: Mitigations | None = None) -> None:
        self.core = core
        self.db = db
        self.executor = executor
        self.clock = clock
        self.incident_channel = incident_channel
        self.mitigations = mitigations or mitigations_by_route

    # -- slash command ------------------------------------------------------------------------

    def on_command(self, ack: Ack, body: dict[str, Any], request: BoltRequest,
                   client: WebClient) -> None:
        ack()
        answer = Answer(client, user=body.get("user_id", ""), channel=body.get("channel_id"),
                        response_url=body.get("response_url"), trigger_id=body.get("trigger_id"))
        key = request_key(body, request.raw_body)
        ctx = Context(user=answer.user, channel=answer.channel, now=self.clock(), request_key=key)
        self._spawn(answer, lambda: self._run(body.get("text") or "", ctx, answer, key))

    # -- buttons ------------------------------------------------------------------------------

    def on_action(self, ack: Ack, body: dict[str, Any], request: BoltRequest,
                  client: WebClient) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        thread_ts = (message.get("thread_ts") or message.get("ts") or container.get("thread_ts")
                     or container.get("message_ts"))
        answer = Answer(client, user=(body.get("user") or {}).get("id", ""), channel=channel,
                        response_url=body.get("response_url"), trigger_id=body.get("trigger_id"),
                        thread_ts=thread_ts)
        key = request_key(body, request.raw_body)
        ctx = Context(user=answer.user, channel=channel, now=self.clock(), thread_ts=thread_ts,
                      request_key=key)
        self._spawn(answer, lambda: self._run(action.get("value") or "", ctx, answer, key))

    # -- forms --------------------------------------------------------------------------------

    def on_view(self, ack: Ack, body: dict[str, Any], request: BoltRequest,
                client: WebClient) -> None:
        view = body.get("view") or {}
        errors = blocks.validation_errors(view)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        values = blocks.view_values(view)
        metadata = decode_metadata(view.get("private_metadata") or "")
        picked = values.pop(blocks.CHANNEL_BLOCK, None)
        channel = picked if isinstance(picked, str) and picked else metadata.get("channel")
        answer = Answer(client, user=(body.get("user") or {}).get("id", ""), channel=channel,
                        response_url=metadata.get("response_url"),
                        thread_ts=metadata.get("thread_ts"))
        kind = blocks.modal_kind(view.get("callback_id") or "")
        key = request_key(body, request.raw_body)
        ctx = Context(user=answer.user, channel=channel, now=self.clock(),
                      thread_ts=answer.thread_ts, request_key=key)

        def work() -> None:
            if self._duplicate(key):
                return
            self._show(self.core.submit(kind, values, metadata.get("context", ""), ctx), answer)

        self._spawn(answer, work)

    # -- shortcuts and events ------------------------------------------------------------------

    def on_attach_shortcut(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        channel = (body.get("channel") or {}).get("id")
        message = body.get("message") or {}
        answer = Answer(client, user=(body.get("user") or {}).get("id", ""), channel=channel,
                        response_url=body.get("response_url"), trigger_id=body.get("trigger_id"),
                        thread_ts=message.get("thread_ts"))
        ctx = Context(user=answer.user, channel=channel, now=self.clock(),
                      thread_ts=message.get("thread_ts"), request_key=request_key(body))
        self._spawn(answer, lambda: self._show(
            self.core.attach_form(message.get("text") or "", ctx), answer))

    def on_home_opened(self, body: dict[str, Any], event: dict[str, Any],
                       client: WebClient) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        key = request_key(body)
        user = event["user"]

        def work() -> None:
            if self._duplicate(key):
                return
            now = self.clock()
            with self.db.read() as session:
                open_incidents = incidents.list_open(session)
                active = self.mitigations(session)
            view = home_view(open_incidents, now=now, mitigations=active)
            client.views_publish(user_id=user, view=view)

        self._spawn(None, work)

    # -- shared -------------------------------------------------------------------------------

    def _run(self, text: str, ctx: Context, answer: Answer, key: str) -> None:
        if self._duplicate(key):
            return
        self._show(self.core.run(text, ctx), answer)

    def _duplicate(self, key: str) -> bool:
        if first_time(self.db, key, now=self.clock()):
            return False
        log.info("Slack request %s already handled (retry or replay); not running it again", key)
        return True

    def _show(self, outcome: Outcome, answer: Answer) -> None:
        if outcome.modal is not None:
            # only the start form needs a channel: it is where the incident thread goes
            ask_channel = outcome.modal.kind == "start" and not (self.incident_channel
                                                                 or answer.channel)
            answer.open_modal(outcome.modal, ask_channel=ask_channel)
        if outcome.reply is not None:
            answer.reply(outcome.reply)

    def _spawn(self, answer: Answer | None, work: Callable[[], None]) -> None:
        """Run `work` after the ack; failures are logged with a reference and told to the user."""

        def guarded() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - the user gets a reference, the log the trace
                ref = uuid.uuid4().hex[:8]
                log.exception("Slack request failed (ref %s)", ref)
                if answer is not None:
                    answer.internal_error(ref)

        try:
            self.executor.submit(guarded)
        except RuntimeError:  # shutting down
            log.warning("Slack request arrived while shutting down; not handled")
            if answer is not None:
                answer.reply(Reply(text="⚠️ llm-incident is restarting; try again in a minute."))


def register_commands(app: App, handlers: Handlers) -> None:
    app.command(COMMAND)(handlers.on_command)


def register_actions(app: App, handlers: Handlers) -> None:
    app.action(RUN_ACTION)(handlers.on_action)


def register_views(app: App, handlers: Handlers) -> None:
    app.view(MODAL)(handlers.on_view)


def register_shortcuts(app: App, handlers: Handlers) -> None:
    app.shortcut(ATTACH_SHORTCUT)(handlers.on_attach_shortcut)


def register_events(app: App, handlers: Handlers) -> None:
    app.event("app_home_opened")(handlers.on_home_opened)


def register(app: App, handlers: Handlers) -> None:
    """Every listener of the product, by kind."""
    for register_kind in (register_commands, register_actions, register_views,
                          register_shortcuts, register_events):
        register_kind(app, handlers)
