"""A crash during the postmortem post or upload: `kill -9` of `llm-incident serve` while Slack
holds that call (it got the request; the answer is lost), then a new process on the same database.

Plain module (no pytest) so bench/faults_outbox.py runs the same scenario. `crash_run` drives it
through the real server process, signed Slack requests and the fake Slack Web API, and returns
what Slack ended up with and how long delivery stalled.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from llm_incident.db import Database
from llm_incident.slack.models import OutboxMessage
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed
from tests.fakeslack import FakeSlack
from tests.serverprocess import ServerProcess, start_server
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender
from tests.support import TEST_KEY, free_port

SUMMARY = "Postmortem draft — incident #1"
HELD = {  # what Slack holds when the server is killed
    "summary": ("chat.postMessage", lambda args: args.get("text") == SUMMARY),
    "upload": ("files.completeUploadExternal", lambda args: True),
}
OUTBOX_CALLS = {"chat.postMessage", "chat.update", "files.getUploadURLExternal",
                "files.completeUploadExternal", "canvases.create", "conversations.replies",
                "conversations.history"}


@dataclass
class CrashRun:
    """What one run left in Slack, and the delays after the restart (seconds)."""

    summary_posts: int
    uploads: Counter  # filename → times shared
    canvases: int
    looked_up: list[str]  # conversations.* calls of the new process
    startup: float  # new process spawned → /healthz answers
    from_spawn: float  # new process spawned → its first outbox call to Slack
    from_ready: float  # /healthz answers → that call
    to_next_post: float  # /healthz answers → the first message posted after the held one


def rows(db: Database) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def settled(db: Database) -> bool:
    found = rows(db)
    return bool(found) and all(r.status != "pending" for r in found)


def serve(workdir: Path, db: Database, slack: FakeSlack, name: str) -> ServerProcess:
    return start_server(workdir, db.url, free_port(), api_key=TEST_KEY, name=name,
                        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
                        SLACK_API_URL=slack.api_url, LLM_INCIDENT_INCIDENT_CHANNEL=INCIDENTS,
                        LLM_INCIDENT_SCHEDULER="false")


def say(sender: SlackSender, slack: FakeSlack, text: str, name: str,
        channel: str = INCIDENTS) -> dict[str, Any]:
    sender.command(text, channel=channel, response=name)
    return slack.wait_for(lambda: slack.responses(name), timeout=30, what=f"answer {name}")[-1]


def crash_run(workdir: Path, db: Database, slack: FakeSlack, *, held: str,
              after_beat: bool = False, timeout: float = 60.0) -> CrashRun:
    """Open an incident, kill a route, close it with Slack holding the `held` call ("summary"
    or "upload"), `kill -9` the server (at once, or `after_beat`: once the held row's lease was
    extended, the worst moment), start a new one and wait until the outbox has settled.

    `held="nothing"` is the baseline: Slack answers 503 to posts, so the summary waits for its
    retry, not in flight, when the server is killed."""
    seed(db)
    method, when = HELD.get(held, ("chat.postMessage", None))
    first = serve(workdir, db, slack, "before-crash")
    second: ServerProcess | None = None
    sender = SlackSender(first.url, slack.url)
    try:
        say(sender, slack, "start support.reply cost tokens exploding", "start", WAR_ROOM)
        root = slack.wait_for(lambda: next((p for p in slack.posts(channel=INCIDENTS)
                                            if "thread_ts" not in p), None), what="the root")
        slack.wait_for(lambda: len(slack.posts(thread_ts=root["ts"])) >= opening_thread(1),
                       what="the opening thread")
        say(sender, slack, "kill support.reply", "kill")
        slack.wait_for(lambda: settled(db), timeout=timeout, what="posts before the close")
        if held == "nothing":  # the baseline: Slack answers 503, the summary waits to retry
            slack.fail(method, times=10_000, status=503)
        else:
            slack.hang(method, when=when)
        say(sender, slack, "close prompt v42 rolled back", "close")
        if held == "nothing":
            slack.wait_for(lambda: any(r.payload.get("probe_from") for r in rows(db)),
                           timeout=timeout, what="a failed attempt")
        else:
            slack.wait_for(lambda: slack.hanging(method), timeout=timeout,
                           what=f"{method} held")
        if after_beat:
            leased = _in_flight(db)
            slack.wait_for(lambda: _in_flight(db) > leased, timeout=timeout,
                           what="the lease extended")
        first.stop(signal.SIGKILL)
        slack.release()
        slack.heal()
        spawned = time.monotonic()
        second = serve(workdir, db, slack, "after-crash")
        ready = time.monotonic()
        slack.wait_for(lambda: settled(db), timeout=timeout, what="the outbox settled")
    finally:
        sender.close()
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()
    after = [c for c in slack.calls() if c.at > spawned and c.method in OUTBOX_CALLS]
    posted = [c.at for c in after if c.method in ("chat.postMessage",
                                                  "files.completeUploadExternal")]
    resumed = after[0].at if after else float("inf")
    return CrashRun(
        summary_posts=sum(p["text"] == SUMMARY for p in slack.posts()),
        uploads=Counter(u["filename"] for u in slack.uploads()),
        canvases=len(slack.calls("canvases.create")),
        looked_up=[c.method for c in after if c.method.startswith("conversations.")],
        startup=ready - spawned, from_spawn=resumed - spawned, from_ready=resumed - ready,
        to_next_post=(posted[0] if posted else float("inf")) - ready)


def _in_flight(db: Database) -> float:
    """The lease end (epoch seconds) of the row in flight (0 when none is)."""
    leased = [r for r in rows(db) if r.status == "pending" and r.attempts > 0
              and r.payload.get("inflight")]
    return max((r.next_attempt_at.timestamp() for r in leased), default=0.0)
