"""Build the Bolt app and its Slack Web API clients from settings (a factory: nothing at import)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from llm_incident.settings import Settings
from llm_incident.slack.identity import BotIdentity
from llm_incident.slack.listeners import Handlers, register

log = logging.getLogger(__name__)


class SlackConfigError(Exception):
    """The Slack configuration cannot work; the message says what to change."""


def web_client(settings: Settings, *, retries: bool = True, timeout: int = 15,
               token: bool = True) -> WebClient:
    """A WebClient on `SLACK_API_URL`; with `retries`, 429s (after Retry-After) and connection
    errors are retried. Bolt copies base_url and retry handlers into its per-request clients."""
    handlers = ([ConnectionErrorRetryHandler(max_retry_count=2),
                 RateLimitErrorRetryHandler(max_retry_count=2)] if retries else [])
    return WebClient(token=settings.slack_bot_token if token else None,
                     base_url=settings.slack_api_url,
                     retry_handlers=handlers, timeout=timeout)


def build_bolt_app(settings: Settings, handlers: Handlers, identity: BotIdentity) -> App:
    """The Bolt app with every listener registered.

    Bolt never calls Slack itself here: `identity.authorize` answers for the configured token
    (no `auth.test` at construction or on the first request's ack path), and our HTTP adapter
    has already checked the signature on the raw body (Bolt checks it again).
    """
    if not settings.slack_bot_token:
        raise SlackConfigError("SLACK_BOT_TOKEN is not set")
    if os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
        raise SlackConfigError(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set, which switches slack-bolt to "
            "multi-workspace OAuth mode; llm-incident is a single-workspace app: unset them")
    app = App(
        name="llm-incident",
        client=web_client(settings, token=False),  # the token comes from `authorize`
        signing_secret=settings.slack_signing_secret or "",
        authorize=identity.bolt_authorize(),
        listener_executor=ThreadPoolExecutor(max_workers=10, thread_name_prefix="slack-ack"),
        logger=logging.getLogger("llm_incident.slack.bolt"),
    )
    register(app, handlers)
    return app
