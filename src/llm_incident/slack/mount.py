"""Put Slack into the service: `POST /slack/events` (HTTP mode) or Socket Mode, plus the outbox.

`mount(app, settings, db, clock)` is called by `create_app`; the inbox runner, the outbox and
reply workers, the bot identity lookup and the Socket Mode connection start and stop with the
server (its lifespan).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from slack_bolt import App
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from llm_incident.commands.alerting import AlertConfig
from llm_incident.commands.core import CommandCore
from llm_incident.commands.links import DashboardLinks
from llm_incident.db import Database
from llm_incident.settings import Settings
from llm_incident.slack.app import build_bolt_app, web_client
from llm_incident.slack.http_request import BadSlackBody, parse_request
from llm_incident.slack.identity import BotIdentity
from llm_incident.slack.home import HomeTab
from llm_incident.slack.listeners import Handlers
from llm_incident.slack.outbox import SlackDelivery
from llm_incident.slack.outbox_worker import OutboxWorker
from llm_incident.slack.replies import ReplyQueue, ReplyWorker
from llm_incident.slack.responders import responders_permission

log = logging.getLogger(__name__)

DISABLED = ("Slack disabled: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP) "
            "or SLACK_APP_TOKEN (Socket Mode)")
MAX_BODY = 1024 * 1024
EVENTS_PATH = "/slack/events"


def slack_mode(settings: Settings) -> str | None:
    """"socket" with an app token, "http" with a signing secret, None when Slack is off."""
    if not settings.slack_bot_token:
        return None
    if settings.slack_app_token:
        return "socket"
    if settings.slack_signing_secret:
        return "http"
    return None


@dataclass
class SlackRuntime:
    """The Slack parts with a life: started and stopped by the server's lifespan."""

    bolt: App
    worker: OutboxWorker
    delivery: SlackDelivery
    handlers: Handlers
    replies: ReplyWorker
    identity: BotIdentity
    mode: str
    app_token: str | None = None
    socket_handler: Any = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _connector: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.identity.start()
        self.worker.start()
        self.replies.start()
        self.handlers.inbox.start()  # takes up the requests a crash left pending
        if self.mode == "socket":
            self._stopping.clear()
            self._connector = threading.Thread(target=self._connect_socket, daemon=True,
                                               name="llm-incident-slack-socket")
            self._connector.start()

    def _connect_socket(self) -> None:
        """Open the Socket Mode connection, retrying while Slack is unreachable (the rest of
        the service runs meanwhile); the client reconnects by itself once connected (see
        slack/socket_mode.py for why it is not slack_sdk's built-in client)."""
        from llm_incident.slack.socket_mode import SocketModeHandler

        self.socket_handler = SocketModeHandler(self.bolt, app_token=self.app_token or "")
        delay = 2.0
        while not self._stopping.is_set():
            try:
                self.socket_handler.connect()
            except Exception as exc:  # noqa: BLE001 - keep trying; say why
                log.error("Slack Socket Mode connection failed (%s); retrying in %.0f s",
                          exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            log.info("Slack connected in Socket Mode")
            return

    def stop(self) -> None:
        self._stopping.set()
        if self._connector is not None:
            self._connector.join(timeout=10)
        if self.socket_handler is not None:
            self.socket_handler.close()
            self.socket_handler = None
        self.handlers.inbox.stop()  # requests in progress finish and store their posts
        self.handlers.home_executor.shutdown(wait=False)
        self.replies.stop()
        self.worker.stop()
        self.identity.stop()
        self.bolt.listener_runner.listener_executor.shutdown(wait=False)


def mount(app: FastAPI, settings: Settings, db: Database, clock: Callable[[], datetime],
          alerts: AlertConfig | None = None) -> SlackRuntime | None:
    """Wire Slack into `app` when configured; log one line saying how to enable it otherwise."""
    mode = slack_mode(settings)
    if mode is None:
        log.info(DISABLED)
        return None
    links = DashboardLinks(settings.dashboard_url)
    worker = OutboxWorker(db, web_client(settings, retries=False), render_clock=clock,
                          links=links)
    delivery = SlackDelivery(wake=worker.wake)
    # Slack calls in front of a command (responders' user groups, views.open) time out fast
    fast = web_client(settings, retries=False, timeout=3)
    core = CommandCore(db, delivery,
                       incident_channel=settings.incident_channel,
                       can_change=responders_permission(settings.responders, fast),
                       event_id_pattern=settings.event_id_pattern, alerts=alerts, links=links)
    replies = ReplyWorker(db, web_client(settings, retries=False, timeout=5), clock=clock)
    handlers = Handlers(core, db, replies=ReplyQueue(db, clock=clock, wake=replies.wake),
                        views=fast, clock=clock, incident_channel=settings.incident_channel,
                        home=HomeTab(db, links=links))
    identity = BotIdentity(settings.slack_bot_token or "", web_client(settings, retries=False))
    bolt = build_bolt_app(settings, handlers, identity)
    runtime = SlackRuntime(bolt=bolt, worker=worker, delivery=delivery, handlers=handlers,
                           replies=replies, identity=identity, mode=mode,
                           app_token=settings.slack_app_token)
    if mode == "http":
        _add_events_route(app, bolt, SignatureVerifier(settings.slack_signing_secret or ""))
        log.info("Slack enabled over HTTP at POST %s", EVENTS_PATH)
    app.state.slack = runtime
    app.state.lifecycle.append(runtime)
    return runtime


def _add_events_route(app: FastAPI, bolt: App, verifier: SignatureVerifier) -> None:
    async def slack_events(request: Request) -> Response:
        """Slack slash commands, interactivity and events (signed requests only)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "request body too large"}, status_code=413)
        if not _signed(verifier, body, request.headers):
            return JSONResponse({"error": "invalid or missing Slack signature (or a request "
                                          "older than 5 minutes)"}, status_code=401)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "body is not UTF-8"}, status_code=400)
        try:
            bolt_request = parse_request(text, query=request.url.query,
                                         headers=dict(request.headers.items()))
        except BadSlackBody as exc:
            return JSONResponse({"error": f"not a Slack request: {exc}"}, status_code=400)
        # Bolt's dispatch is synchronous and waits for the listener's ack: keep it off the loop.
        bolt_response = await run_in_threadpool(bolt.dispatch, bolt_request)
        return Response(status_code=bolt_response.status, content=bolt_response.body,
                        headers=bolt_response.first_headers_without_set_cookie())

    app.add_api_route(EVENTS_PATH, slack_events, methods=["POST"], include_in_schema=False)


def _signed(verifier: SignatureVerifier, body: bytes, headers: Any) -> bool:
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    try:
        return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):
        return False
