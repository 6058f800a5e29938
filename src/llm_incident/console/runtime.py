"""Running the console for `llm-incident shell` and `demo`: a quiet log, the scheduler's posts fed
to the terminal, and the loop itself."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: `llm-incident --help` reads LOG_FORMAT from here
    from llm_incident.console.feed import ConsoleFeed
    from llm_incident.db import Database
    from llm_incident.scheduler.context import JobContext
    from llm_incident.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_file(path: Path) -> None:
    """The console's terminal shows prompts and results: the log goes to `path`, and only
    warnings and errors also to the terminal."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    loud = logging.StreamHandler(sys.stderr)
    loud.setLevel(logging.WARNING)
    loud.setFormatter(logging.Formatter("⚠️ %(name)s: %(message)s"))
    loud.addFilter(not_a_skipped_run)
    root.addHandler(to_file)
    root.addHandler(loud)


def not_a_skipped_run(record: logging.LogRecord) -> bool:
    """APScheduler warns when a run is skipped because the previous one is still going: with
    the demo's faster clock that is routine (the next run does the work), so file only."""
    return not (record.name.startswith("apscheduler") and record.levelno < logging.ERROR)


def feed_console(jc: JobContext) -> ConsoleFeed:
    """Give the jobs of `jc` a feed to the console (their delivery, e.g. Slack's, still gets
    everything); without Slack, unowned posts (an expiry outside an incident) go to the
    console as their channel."""
    from llm_incident.console.feed import ConsoleFeed
    from llm_incident.console.shell import CHANNEL

    feed = ConsoleFeed(also=jc.delivery)
    if feed.also is None and not jc.alert_channel:
        jc.alert_channel = CHANNEL
    jc.delivery = feed
    return feed


def run_console(database: Database, user: str | None, settings: Settings, *,
                clock: Callable[[], datetime], feed: ConsoleFeed | None = None,
                scheduler_running: bool = False) -> None:
    """The console loop. `scheduler_running`: a scheduler in this process already runs every
    job (and `feed` gets its posts); else the console evaluates the alerts itself when due and
    starts a scheduler for the other jobs unless LLM_INCIDENT_SCHEDULER=false. Raises
    RuleError when the alert rules are unusable."""
    from llm_incident.alerts.rules import load_rules
    from llm_incident.commands.alerting import AlertConfig
    from llm_incident.commands.links import DashboardLinks
    from llm_incident.console.alerts import ConsoleAlerts
    from llm_incident.console.shell import Shell, console_permission
    from llm_incident.scheduler.leader import Leadership
    from llm_incident.scheduler.runner import Scheduler
    from llm_incident.scheduler.setup import job_context
    from llm_incident.slack.outbox import SlackDelivery

    alerts = AlertConfig(rules=load_rules(settings.alert_rules), channel=settings.alert_channel,
                         interval_seconds=settings.alert_interval_seconds)
    jc, own = job_context(settings, database), job_context(settings, database)
    if settings.slack_enabled:  # what the console evaluates is posted by the server's outbox
        jc.delivery = own.delivery = SlackDelivery()
    scheduler = None
    if not scheduler_running and settings.scheduler:
        feed = feed_console(own)
        scheduler = Scheduler(own, leadership=Leadership(database), alerts_on=False,
                              alert_interval_seconds=settings.alert_interval_seconds, clock=clock)
        scheduler.start()
    sink = ConsoleAlerts(jc, interval_seconds=settings.alert_interval_seconds,
                         evaluate=not scheduler_running)
    try:
        Shell(database, user=user, alerts=alerts, can_change=console_permission(settings.responders),
              alert_sink=sink, clock=clock, feed=feed, live=sys.stdin.isatty(),
              current_input=_line_buffer(),
              links=DashboardLinks(settings.dashboard_url)).loop()
    finally:
        if scheduler is not None:
            scheduler.stop()


def _line_buffer() -> Callable[[], str]:
    """What has been typed at the prompt so far (readline's buffer; "" without readline)."""
    try:
        import readline  # line editing and history for input()
    except ImportError:  # pragma: no cover - not on every platform
        return lambda: ""
    return readline.get_line_buffer
