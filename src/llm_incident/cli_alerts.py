"""`llm-incident alerts check`: one evaluation from the command line, printed as a table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from llm_incident.alerts.baselines import LEARNING
from llm_incident.alerts.evaluate import OK, Observation
from llm_incident.commands.alert_views import times
from llm_incident.db import Database
from llm_incident.metrics.compare import fmt
from llm_incident.scheduler.alert_job import run_alerts
from llm_incident.scheduler.setup import job_context
from llm_incident.settings import Settings
from llm_incident.slack.outbox import SlackDelivery


def _row(obs: Observation) -> tuple[str, ...]:
    kind = obs.rule.watched.kind
    base = fmt(obs.baseline, kind) if obs.rule.uses_baseline else "-"
    ratio = times(obs.ratio) if obs.rule.uses_baseline else "-"
    since = f"{obs.onset:%H:%M}" if obs.onset is not None else "-"
    note = "; ".join(dict.fromkeys(part for part in (obs.reason, obs.basis) if part))
    return (obs.rule.id, obs.route, obs.shown_level, fmt(obs.value, kind), base, ratio,
            f"{obs.calls:,}", since, note)


def run_check(settings: Settings, db: Database, *, now: datetime, dry_run: bool,
              show_all: bool, echo: Callable[[str], None]) -> int:
    """Evaluate, print, and (unless a dry run) store and queue; the exit status (0)."""
    jc = job_context(settings, db)
    if not dry_run and not settings.alert_channel:
        echo("LLM_INCIDENT_ALERT_CHANNEL is unset: state changes are stored and shown by `alerts` "
             "(Slack and the console) and in an open incident's thread, not posted to a channel.")
    if settings.slack_enabled:
        jc.delivery = SlackDelivery()
    run = run_alerts(jc, now, dry_run=dry_run)
    shown = [o for o in run.observations if show_all or o.level != OK or o.pending or o.status]
    header = ("rule", "route", "level", "now", "baseline", "ratio", "calls", "since", "note")
    rows = [header, *(_row(o) for o in shown)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    ok = sum(o.level == OK for o in run.observations)
    unjudged = sum(o.level is None for o in run.observations)
    learning = sum(o.status == LEARNING for o in run.observations)
    pending = sum(bool(o.pending) for o in run.observations)
    echo(f"{len(jc.rules)} rules, {len(run.observations)} rule × route checks at "
         f"{now:%Y-%m-%d %H:%M:%S} UTC: {ok} ok ({pending} with a pending warning), "
         f"{len(run.observations) - ok - unjudged} above ok, {unjudged} not judged "
         f"({learning} learning).")
    if dry_run:
        echo("Dry run: nothing stored or posted.")
        return 0
    for pending in run.held:
        echo(f"held by cooldown until {pending.until:%H:%M} UTC: {pending.observation.rule.id} "
             f"on {pending.observation.route} ({pending.stored} → {pending.observation.level})")
    where = ("queued for Slack (the server's outbox posts them)" if jc.delivery is not None
             else "stored (Slack is off: `alerts` and the console show them)")
    echo(f"{len(run.notifications)} state change(s) {where}.")
    for note in run.notifications:
        echo(f"  alert {note.id}: {note.rule_id} on {note.route}: {note.previous_level} → "
             f"{note.level}")
    return 0
