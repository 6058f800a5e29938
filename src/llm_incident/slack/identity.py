"""Who the bot is, learned from `auth.test` in the background, never on a request's ack path.

slack-bolt's single-workspace mode calls `auth.test` lazily on the first request, before the ack:
with Slack answering 500 that request is told to "reinstall", with 429 or a hang it is acked late
or not at all. `BotIdentity.bolt_authorize()` gives Bolt the configured token at once (with the bot's
user id once known); `learn` retries `auth.test` with backoff until Slack answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class BotIdentity:
    """The bot token, and the user/bot ids behind it once `auth.test` has answered."""

    def __init__(self, token: str, client: WebClient) -> None:
        self.token = token
        self.client = client
        self.user_id: str | None = None
        self.bot_id: str | None = None
        self.known = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bolt_authorize(self) -> Callable[[str | None, str | None], AuthorizeResult]:
        """Bolt's `authorize` hook (a plain function: Bolt passes arguments by their names): no
        Slack call, whatever Slack's health."""
        def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                                   bot_token=self.token, bot_user_id=self.user_id,
                                   bot_id=self.bot_id)
        return authorize

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.learn, daemon=True,
                                        name="llm-incident-slack-identity")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def learn(self, *, first_delay: float = 1.0, max_delay: float = 60.0) -> None:
        """Call auth.test until it answers; a rejected token is logged loudly once."""
        delay = first_delay
        while not self._stop.is_set() and not self.known.is_set():
            try:
                answer = self.client.auth_test()
            except SlackApiError as exc:
                error = exc.response.get("error")
                if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                    log.error("Slack rejects SLACK_BOT_TOKEN (%s): check the token or reinstall "
                              "the app; requests are still stored and acknowledged", error)
                    return
                log.warning("Slack auth.test failed (%s); retrying in %.0f s",
                            error or exc.response.status_code, delay)
            except Exception as exc:  # noqa: BLE001 - Slack unreachable or hanging: retry
                log.warning("Slack auth.test failed (%s); retrying in %.0f s",
                            type(exc).__name__, delay)
            else:
                self.user_id, self.bot_id = answer.get("user_id"), answer.get("bot_id")
                self.known.set()
                log.info("Slack bot identity: user %s, bot %s", self.user_id, self.bot_id)
                return
            self._stop.wait(delay)
            delay = min(delay * 2, max_delay)
