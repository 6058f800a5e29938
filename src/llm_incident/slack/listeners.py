"""Bolt listeners → the command core. A request is stored (the Slack inbox), then acked, then run
by the inbox's own pool: nothing acked is lost, and answers go out through the reply worker.

`register(app, handlers)` wires commands, actions, views, shortcuts and events onto an `App`
built by `slack.app.build_bolt_app`; nothing here is registered at import.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from llm_incident.commands.acks import ack_text
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.commands.replies import Outcome, Reply
from llm_incident.db import Database
from llm_incident.slack import blocks, inbox
from llm_incident.slack.answers import Answer, decode_metadata
from llm_incident.slack.command_text import command_text
from llm_incident.slack.dedupe import first_time, request_key
from llm_incident.slack.home import HomeTab
from llm_incident.slack.inbox import InboxRunner
from llm_incident.slack.models import InboxRequest
from llm_incident.slack.replies import ReplyQueue

log = logging.getLogger(__name__)

COMMAND = re.compile(r"^/llm-incident")  # also /llm-incident-staging and the like
RUN_ACTION = re.compile(rf"^{re.escape(blocks.RUN_ACTION)}\.\d+$")
MODAL = re.compile(rf"^{re.escape(blocks.MODAL_CALLBACK)}\.")
ATTACH_SHORTCUT = "attach_to_incident"
Mitigations = Callable[[Session], Mapping[str, Sequence[str]]]
AFTER_CRASH = ("✅ Your request{what} was carried out; llm-incident restarted before it could "
               "answer. `/llm-incident list` or the incident thread shows the result.")
DB_DOWN = ("⚠️ llm-incident cannot reach its database right now, so nothing was done. Try again "
           "in a minute; if it persists, tell whoever runs llm-incident.")


class Handlers:
    """The listeners' work. The ack path stores the request (`inbox.accept`) and acks; the
    inbox runner then calls `process` on a pool of its own, now or after a restart."""

    def __init__(self, core: CommandCore, db: Database, *, replies: ReplyQueue,
                 views: WebClient, clock: Callable[[], datetime],
                 incident_channel: str | None = None,
                 mitigations: Mitigations | None = None,
                 home_executor: Executor | None = None, home: HomeTab | None = None) -> None:
        self.core = core
        self.db = db
        self.replies = replies
        self.views = views  # short timeout, no retries: a trigger_id lives 3 seconds
        self.clock = clock
        self.incident_channel = incident_channel
        self.home = home or HomeTab(db, mitigations=mitigations)
        self.inbox = InboxRunner(db, self.process, self.answer_after_crash, clock=clock)
        self.home_executor = home_executor or ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="slack-home")

    # -- the ack path: store, then ack ----------------------------------------------------------

    def on_command(self, ack: Ack, body: dict[str, Any], request: BoltRequest) -> None:
        said = ack_text(command_text(body))
        self._accept(ack, "command", body, request_key(body, request.raw_body),
                     ack_text=blocks.escape(said) if said else None)

    def on_action(self, ack: Ack, body: dict[str, Any], request: BoltRequest) -> None:
        self._accept(ack, "action", body, request_key(body, request.raw_body))

    def on_view(self, ack: Ack, body: dict[str, Any], request: BoltRequest) -> None:
        errors = blocks.validation_errors(body.get("view") or {})
        if errors:
            ack(response_action="errors", errors=errors)
            return
        self._accept(ack, "view", body, request_key(body, request.raw_body))

    def on_attach_shortcut(self, ack: Ack, body: dict[str, Any], request: BoltRequest) -> None:
        self._accept(ack, "shortcut", body, request_key(body, request.raw_body))

    def _accept(self, ack: Ack, kind: str, body: dict[str, Any], key: str, *,
                ack_text: str | None = None) -> None:
        try:
            item = inbox.accept(self.db, key=key, kind=kind, body=body, now=self.clock())
        except SQLAlchemyError as exc:
            log.error("Slack %s not stored, database unavailable: %s", kind,
                      str(exc).splitlines()[0][:300])
            ack(text=DB_DOWN) if kind == "command" else ack()
            return
        if item is None:
            log.info("Slack request %s already handled (retry or replay); not running it "
                     "again", key)
            ack()
            return
        ack(text=ack_text) if ack_text else ack()
        self.inbox.submit(item)

    # -- processing (inbox runner) ---------------------------------------------------------------

    def process(self, item: InboxRequest) -> None:
        """Run one stored request; a failure is logged with a reference, told to the user, and
        re-raised for the inbox to record."""
        body = item.body
        kind = item.kind
        answer = self._answer(kind, body, item.key)
        try:
            if kind == "command":
                self._show(self.core.run(command_text(body), self._ctx(answer, body)), answer)
            elif kind == "action":
                action = (body.get("actions") or [{}])[0]
                self._show(self.core.run(action.get("value") or "",
                                         self._ctx(answer, body, via="button")), answer)
            elif kind == "view":
                self._submit(body, answer)
            elif kind == "shortcut":
                message = body.get("message") or {}
                self._show(self.core.attach_form(message.get("text") or "",
                                                 self._ctx(answer, body, via="form")), answer)
            else:
                raise ValueError(f"unknown inbox request kind {kind!r}")
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("Slack request failed (ref %s)", ref)
            answer.internal_error(ref)
            raise

    def answer_after_crash(self, item: InboxRequest) -> None:
        """The request's effect committed, then the process died before its answer was stored:
        say that it was done (unless the answer made it after all)."""
        if self.replies.has_answered(item.key):
            return
        what = command_text(item.body) if item.kind == "command" else ""
        answer = self._answer(item.kind, item.body, item.key)
        answer.reply(Reply(text=AFTER_CRASH.format(what=f" `{what[:200]}`" if what else "")))

    def _answer(self, kind: str, body: dict[str, Any], key: str) -> Answer:
        if kind == "command":
            return Answer(self.replies, self.views, user=body.get("user_id", ""), key=key,
                          channel=body.get("channel_id"), response_url=body.get("response_url"),
                          trigger_id=body.get("trigger_id"))
        user = (body.get("user") or {}).get("id", "")
        if kind == "view":
            metadata = decode_metadata((body.get("view") or {}).get("private_metadata") or "")
            return Answer(self.replies, self.views, user=user, key=key,
                          channel=metadata.get("channel"),
                          response_url=metadata.get("response_url"),
                          thread_ts=metadata.get("thread_ts"))
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        if kind == "shortcut":
            thread_ts = message.get("thread_ts")
        else:
            thread_ts = (message.get("thread_ts") or message.get("ts")
                         or container.get("thread_ts") or container.get("message_ts"))
        return Answer(self.replies, self.views, user=user, key=key, channel=channel,
                      response_url=body.get("response_url"), trigger_id=body.get("trigger_id"),
                      thread_ts=thread_ts)

    def _ctx(self, answer: Answer, body: dict[str, Any], via: str = "typed") -> Context:
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        name = body.get("user_name") or user.get("username") or user.get("name")
        return Context(user=answer.user, channel=answer.channel, now=self.clock(),
                       thread_ts=answer.thread_ts, request_key=answer.key,
                       user_name=str(name)[:200] if name else None, via=via)

    def _submit(self, body: dict[str, Any], answer: Answer) -> None:
        view = body.get("view") or {}
        values = blocks.view_values(view)
        metadata = decode_metadata(view.get("private_metadata") or "")
        picked = values.pop(blocks.CHANNEL_BLOCK, None)
        if isinstance(picked, str) and picked:
            answer.channel = picked
        kind = blocks.modal_kind(view.get("callback_id") or "")
        self._show(self.core.submit(kind, values, metadata.get("context", ""),
                                    self._ctx(answer, body, via="form")), answer)

    def _show(self, outcome: Outcome, answer: Answer) -> None:
        if outcome.modal is not None:
            # only the start form needs a channel: it is where the incident thread goes
            ask_channel = outcome.modal.kind == "start" and not (self.incident_channel
                                                                 or answer.channel)
            answer.open_modal(outcome.modal, ask_channel=ask_channel)
        if outcome.reply is not None:
            answer.reply(outcome.reply)

    # -- App Home (Slack retries events itself; nothing to store) ---------------------------------

    def on_home_opened(self, body: dict[str, Any], event: dict[str, Any],
                       client: WebClient) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        key = request_key(body)
        user = event["user"]

        def work() -> None:
            if not first_time(self.db, key, now=self.clock()):
                return
            client.views_publish(user_id=user, view=self.home.view(self.clock()))

        def guarded() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - the Home tab is best effort; say why in the log
                log.exception("App Home for %s not published", user)

        try:
            self.home_executor.submit(guarded)
        except RuntimeError:  # shutting down
            pass


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
