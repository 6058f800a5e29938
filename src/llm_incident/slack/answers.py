"""How the bot answers the person who asked: a stored answer (response_url, ephemeral message or
a DM, see replies.py), or a form opened with the request's trigger."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from llm_incident.commands.replies import Modal, Reply
from llm_incident.slack import blocks
from llm_incident.slack.replies import ReplyQueue

log = logging.getLogger(__name__)

INTERNAL_ERROR = (
    "⚠️ Something went wrong on our side and the request may not have completed (reference "
    "`{ref}`). Check the incident with `/llm-incident list`, then try again; if it keeps "
    "failing, give the reference to whoever runs llm-incident."
)
FORM_TOO_SLOW = (
    "⚠️ The form could not be opened in time ({error}): Slack allows 3 seconds for that. Run "
    "the command again{skip}."
)
FORM_REFUSED = "⚠️ Slack refused to open the form ({error}{details}). Run the command again{skip}."
FORM_SKIPS = {"start": ", or skip the form: `/llm-incident start <routes…> [class] <symptom>`",
              "attach": ", or skip the form: `/llm-incident attach #N <event_id…> [good|bad|none] "
                        "[note]`",
              "note": ", or skip the form: `/llm-incident note <event_id> <text>`"}
SLOW_ERRORS = {"expired_trigger_id", "exchanged_trigger_id", "no trigger_id"}


@dataclass
class Answer:
    """Where to answer one request: its response_url if any, else the user in the channel/DM.

    Answers are stored (`ReplyQueue`) and sent by the reply worker; `key` (the request's) makes
    them idempotent, so a request re-run after a crash does not answer twice.
    """

    replies: ReplyQueue
    views: WebClient  # views.open only: it must happen within the trigger's 3 seconds
    user: str
    key: str
    channel: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None
    thread_ts: str | None = None  # the incident thread the request came from, if any
    _sent: int = 0

    def reply(self, reply: Reply) -> None:
        """Show `reply` to the user (ephemeral unless `reply.ephemeral` is False)."""
        self._sent += 1
        self.replies.enqueue(f"{self.key}:reply:{self._sent}", blocks.message(reply),
                             user=self.user, channel=self.channel,
                             response_url=self.response_url, ephemeral=reply.ephemeral,
                             thread_ts=self.thread_ts)

    def error(self, text: str) -> None:
        self.reply(Reply(text=text))

    def internal_error(self, ref: str) -> None:
        self.error(INTERNAL_ERROR.format(ref=ref))

    def open_modal(self, modal: Modal, *, ask_channel: bool) -> None:
        """Open the form with this request's trigger_id (valid for 3 seconds)."""
        metadata = encode_metadata(modal.context, channel=self.channel, thread_ts=self.thread_ts,
                                   response_url=self.response_url)
        view = blocks.modal_view(modal, private_metadata=metadata, ask_channel=ask_channel)
        try:
            if not self.trigger_id:
                raise ValueError("no trigger_id")
            self.views.views_open(trigger_id=self.trigger_id, view=view)
        except Exception as exc:  # noqa: BLE001 - refused, timed out, unreachable: say which
            self.error(form_failure(exc, modal.kind))


def form_failure(exc: Exception, kind: str) -> str:
    """What to tell the user when views.open failed: a late trigger, or what Slack objected to."""
    details = ""
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
        messages = (exc.response.get("response_metadata") or {}).get("messages") or []
        if messages:
            details = ": " + "; ".join(str(m) for m in messages[:3])
    elif isinstance(exc, ValueError):
        error = str(exc)
    else:  # a timeout or a connection error: Slack did not answer within the trigger's life
        error = f"Slack did not answer: {type(exc).__name__}"
    log.warning("views.open failed: %s%s", error, details)
    skip = FORM_SKIPS.get(kind, "")
    if error in SLOW_ERRORS or error.startswith("Slack did not answer"):
        return FORM_TOO_SLOW.format(error=error, skip=skip)
    return FORM_REFUSED.format(error=error, details=details[:500], skip=skip)


def encode_metadata(context: str, *, channel: str | None, thread_ts: str | None = None,
                    response_url: str | None = None) -> str:
    """The modal's private_metadata: the core's context, where the form was opened from (the
    submission has neither channel nor thread) and where to answer afterwards."""
    data = {"context": context, "channel": channel, "thread_ts": thread_ts,
            "response_url": response_url}
    text = json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":"))
    if len(text) > blocks.MAX_METADATA:  # keep the context; drop the answer route
        data.pop("response_url")
        text = json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":"))
    return text


def decode_metadata(text: str) -> dict[str, str]:
    """Inverse of `encode_metadata`; a non-JSON value is taken as the bare context."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {"context": text}
    if not isinstance(data, dict):
        return {"context": text}
    return {k: str(v) for k, v in data.items() if v is not None}
