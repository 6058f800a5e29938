"""Build the Bolt app and its Slack Web API clients from settings (a factory: nothing at import)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from llm_incident.commands.core import CommandCore
from llm_incident.db import Database
from llm_incident.settings import Settings
from llm_incident.slack.listeners import Handlers, Mitigations, register
from llm_incident.slack.outbox import utc_now

log = logging.getLogger(__name__)


class SlackConfigError(Exception):
    """The Slack configuration cannot work; the message says what to change."""


def web_client(settings: Settings, *, retries: bool = True, timeout: int = 15) -> WebClient:
    """A WebClient on `SLACK_API_URL`; with `retries`, 429s (after Retry-After) and connection
    errors are retried. Bolt copies base_url and retry handlers into its per-request clients."""
    handlers = ([ConnectionErrorRetryHandler(max_retry_count=2),
                 RateLimitErrorRetryHandler(max_retry_count=2)] if retries else [])
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                     retry_handlers=handlers, timeout=timeout)


def build_bolt_app(settings: Settings, core: CommandCore, db: Database, *,
                   executor: Executor | None = None,
                   clock: Callable[[], datetime] = utc_now,
                   mitigations: Mitigations | None = None) -> App:
    """The Bolt app with every listener registered; work after the ack runs on `executor`.

    The bot token is not checked at construction (`auth.test` happens on the first request),
    so building the app never calls Slack.
    """
    if not settings.slack_bot_token:
        raise SlackConfigError("SLACK_BOT_TOKEN is not set")
    if os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
        raise SlackConfigError(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set, which switches slack-bolt to "
            "multi-workspace OAuth mode; llm-incident is a single-workspace app: unset them")
    app = App(
        name="llm-incident",
        client=web_client(settings),
        signing_secret=settings.slack_signing_secret or "",
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(max_workers=10, thread_name_prefix="slack-ack"),
        logger=logging.getLogger("llm_incident.slack.bolt"),
    )
    handlers = Handlers(
        core, db, executor=executor or ThreadPoolExecutor(max_workers=8,
                                                          thread_name_prefix="slack-work"),
        clock=clock, incident_channel=settings.incident_channel, mitigations=mitigations)
    register(app, handlers)
    return app
