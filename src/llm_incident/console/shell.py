"""`llm-incident shell`: type `/llm-incident …` commands, press buttons by number, fill forms."""

from __future__ import annotations

import getpass
import io
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from sqlmodel import Session

from llm_incident.commands.alerting import AlertConfig
from llm_incident.console.alerts import ConsoleAlerts
from llm_incident.console.feed import ConsoleFeed
from llm_incident.console.local import LocalCommands, local_text
from llm_incident.commands.core import CommandCore, card
from llm_incident.commands.context import Context
from llm_incident.commands.links import NO_LINKS, DashboardLinks
from llm_incident.commands.mitigations import Permission
from llm_incident.commands.replies import (
    Attachment,
    Button,
    FieldKind,
    Modal,
    Outcome,
    Post,
    Target,
)
from llm_incident.commands.route_chart import ROUTE_CHART, render_chart
from llm_incident.console.render import render_modal_intro, render_reply
from llm_incident.db import Database
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident

CHANNEL = "console"
PROMPT = "llm-incident> "
PRINT_EVERY = 0.25  # seconds between looks for scheduler posts and alerts while at the prompt


def console_permission(responders: list[str]) -> Permission | None:
    """The console user (`--user`, else the login) must be one of `LLM_INCIDENT_RESPONDERS`
    to change controls or close incidents; None (anyone) when none are set. User groups
    cannot be resolved without Slack, so only listed users count here."""
    users = frozenset(r.strip() for r in responders if r.strip())
    return users.__contains__ if users else None


def scheduled_news(posts: list[Post], cards: list[int]) -> tuple[list[Post], list[int]]:
    """What of the scheduler's posts a terminal should show: Slack edits the runbook and
    Triage messages in place each minute, which in a terminal would reprint them over and
    over, so in-place edits are left out (a control panel's too, unless it comes with news),
    and a card is reprinted only beside news of its incident (a check, an expiry, a nudge)."""
    news = [p for p in posts if not p.replace]
    about = {p.incident for p in news}
    shown = [p for p in posts if not p.replace or (p.incident in about and ":panel:" in (p.key or ""))]
    return shown, [number for number in cards if number in about]


class ConsoleDelivery:
    """Collects posts during a command; the shell prints them once the command is done."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.cards: list[int] = []

    def enqueue(self, session: Session, posts: list[Post]) -> None:
        for post in posts:
            if post.target is Target.root:
                incident = incidents.get_incident(session, post.incident)
                incidents.set_root_message(session, incident, channel_id=incident.channel_id or CHANNEL,
                                           ts=f"console-{post.incident}")
        self.posts.extend(posts)

    def refresh_card(self, session: Session, incident: Incident) -> None:
        self.cards.append(incident.number)

    def drain(self) -> tuple[list[Post], list[int]]:
        posts, cards = self.posts, list(dict.fromkeys(self.cards))
        self.posts, self.cards = [], []
        return posts, cards


class Shell:
    """The read-eval-print loop over the command core."""

    def __init__(self, db: Database, *, user: str | None = None, out: TextIO = sys.stdout,
                 read: Callable[[str], str] = input,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 alerts: AlertConfig | None = None,
                 can_change: Permission | None = None,
                 alert_sink: ConsoleAlerts | None = None,
                 feed: ConsoleFeed | None = None, live: bool = False,
                 current_input: Callable[[], str] = lambda: "",
                 links: DashboardLinks = NO_LINKS, files_dir: Path | None = None) -> None:
        """`feed`: the scheduler's posts to print; `live`: print them (and alerts) as they come
        while the prompt waits, redrawing the prompt and `current_input()` below them."""
        self.db = db
        self.alert_sink, self.feed, self.live = alert_sink, feed, live
        self.current_input = current_input
        self.local = LocalCommands(db)
        self._screen = threading.Lock()
        self._idle = False
        self.delivery = ConsoleDelivery()
        self.links = links
        self.files_dir = files_dir or Path(tempfile.gettempdir()) / "llm-incident"  # charts
        self.core = CommandCore(db, self.delivery, alerts=alerts, can_change=can_change,
                                links=links)
        self.user = user or getpass.getuser()
        self.out = out
        self.read = read
        self.clock = clock
        self.buttons: list[Button] = []
        self.threads: dict[int, str] = {}  # button index → the incident thread it was shown in

    def say(self, text: str) -> None:
        print(local_text(text), file=self.out)

    def context(self, thread_ts: str | None = None, via: str = "typed") -> Context:
        return Context(user=self.user, channel=CHANNEL, now=self.clock(), thread_ts=thread_ts,
                       user_name=self.user, via=via)

    def render(self, reply, incident: int | None = None) -> str:
        """Render `reply`, numbering its buttons; those of an incident's posts remember its
        thread, so pressing one acts as it would in Slack (a closed incident's stay inert)."""
        first = len(self.buttons)
        text = render_reply(reply, self.buttons)
        if incident is not None:
            self.threads.update((i, f"console-{incident}") for i in range(first, len(self.buttons)))
        return text

    def handle_line(self, line: str) -> None:
        """One line: a button number, or a command with or without `/llm-incident`."""
        line = line.strip()
        if not line:
            return
        thread, via = None, "typed"
        if line.isdigit():
            index = int(line)
            if not 1 <= index <= len(self.buttons):
                self.say(f"no button [{index}]; buttons shown so far: 1–{len(self.buttons)}")
                return
            button = self.buttons[index - 1]
            if button.confirm and not self._confirm(button):
                return
            line, via = button.command, "button"
            thread = self.threads.get(index - 1)
        for prefix in ("/llm-incident", "llm-incident"):
            if line.startswith(prefix):
                line = line[len(prefix):]
        answer = self.local.run(line, self.clock()) if via == "typed" else None
        if answer is not None:
            self.say(answer)
            return
        self.show(self.core.run(line, self.context(thread, via)), thread)

    def _confirm(self, button: Button) -> bool:
        answer = self.read(f"{button.confirm.text} [{button.confirm.ok}/no] ").strip().lower()
        return answer in ("y", "yes", button.confirm.ok.lower())

    def show(self, outcome: Outcome, thread: str | None = None) -> None:
        if outcome.modal is not None:
            values = self.fill(outcome.modal)
            if values is None:
                self.say("(cancelled)")
                return
            outcome = self.core.submit(outcome.modal.kind, values, outcome.modal.context,
                                       self.context(thread))
        if outcome.reply is not None:
            self.say(render_reply(outcome.reply, self.buttons))
        self.print_posts(*self.delivery.drain())

    def print_posts(self, posts: list[Post], cards: list[int]) -> None:
        """Posts (the command's, or the scheduler's) and the summary cards they updated."""
        for post in posts:
            where = {Target.root: "summary card", Target.thread: "thread",
                     Target.origin: "channel", Target.channel: f"to {post.channel}"}[post.target]
            updated = " (updated)" if post.replace else ""
            about = (f"incident #{post.incident}" if post.incident is not None
                     else "chart" if post.attachments else "alert")
            self.say(f"\n── {about} · {where}{updated} ──")
            self.say(self.render(post.reply, post.incident))
            charts = [a for a in post.attachments if a.kind == ROUTE_CHART]
            for attachment in charts:
                self.say(self.write_chart(attachment))
            if len(charts) < len(post.attachments):
                self.say(f"(the files go to Slack; `postmortem {post.incident}` prints the full "
                         "draft)")
        for number in cards:
            with self.db.read() as session:
                incident = incidents.get_incident(session, number)
                current = card(session, incident, links=self.links)
            self.say(f"\n── incident #{number} · summary card (updated) ──")
            self.say(self.render(current, number))

    def write_chart(self, attachment: Attachment) -> str:
        """Draw a route's chart into `files_dir`; where it went, or why not."""
        path = self.files_dir / attachment.filename
        try:
            with self.db.read() as session:
                png = render_chart(session, dict(attachment.args))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
        except OSError as exc:
            return f"⚠️ could not write the chart to {path}: {exc.strerror or exc}"
        return f"chart written to {path.resolve()} (open it with any image viewer)"

    def show_alerts(self) -> None:
        """Alerts that fired since the last prompt (the first time: what is firing now), each
        with its Start button numbered like any other."""
        if self.alert_sink is None:
            return
        for alert in self.alert_sink.poll(self.clock()):
            self.say(f"\n── alert · {alert.where} ──")
            self.say(self.render(alert.reply, alert.incident))

    def show_pending(self) -> None:
        """New alerts, then what the scheduler posted (checks, expiries, nudges); never raises."""
        try:
            self.show_alerts()
        except Exception as exc:  # noqa: BLE001 - an alert problem must not stop the console
            self.say(f"⚠️ alerts could not be evaluated: {exc!r}")
        if self.feed is not None:
            try:
                self.print_posts(*scheduled_news(*self.feed.drain()))
            except Exception as exc:  # noqa: BLE001 - nor a post that cannot be shown
                self.say(f"⚠️ a scheduled post could not be shown: {exc!r}")

    def _prompt(self) -> str:
        with self._screen:
            self._idle = True
        try:
            return self.read(PROMPT)
        finally:
            with self._screen:
                self._idle = False

    def _print_while_idle(self, stop: threading.Event) -> None:
        """While the prompt waits: print what came, then the prompt and the typed text again."""
        while not stop.wait(PRINT_EVERY):
            with self._screen:
                if not self._idle:
                    continue
                out, self.out = self.out, io.StringIO()
                try:
                    self.show_pending()
                finally:
                    text, self.out = self.out.getvalue(), out
                if text:
                    out.write("\r\x1b[2K" + text + PROMPT + self.current_input())
                    out.flush()

    def fill(self, modal: Modal) -> dict[str, str | list[str]] | None:
        """Ask for each field; None when cancelled."""
        self.say(render_modal_intro(modal))
        values: dict[str, str | list[str]] = {}
        try:
            for field in modal.fields:
                hint = f" ({field.hint})" if field.hint else ""
                if field.kind in (FieldKind.select, FieldKind.multi_select) and field.options:
                    choices = ", ".join(field.options)
                    many = " (several: comma separated)" if field.kind is FieldKind.multi_select else ""
                    answer = self.read(f"{field.label}{many} [{choices}] ").strip()
                else:
                    answer = self.read(f"{field.label}{hint}: ").strip()
                if not answer and field.initial:
                    answer = field.initial if isinstance(field.initial, str) else ",".join(field.initial)
                if field.kind is FieldKind.multi_select:
                    values[field.name] = [a.strip() for a in answer.split(",") if a.strip()]
                else:
                    values[field.name] = answer
        except (EOFError, KeyboardInterrupt):
            return None
        return values

    def loop(self) -> None:
        self.say("llm-incident console — type `help`, a command, or a button number; Ctrl-D quits.")
        stop = threading.Event()
        if self.live:
            threading.Thread(target=self._print_while_idle, args=(stop,), daemon=True,
                             name="llm-incident-console-printer").start()
        try:
            self._repl()
        finally:
            stop.set()

    def _repl(self) -> None:
        while True:
            self.show_pending()
            try:
                line = self._prompt()
            except (EOFError, KeyboardInterrupt):
                self.say("")
                return
            if line.strip() in ("quit", "exit"):
                return
            try:
                self.handle_line(line)
            except Exception as exc:  # noqa: BLE001 - the console never dies on one bad command
                self.say(f"⚠️ internal error: {exc!r} (nothing was changed if the command failed)")
