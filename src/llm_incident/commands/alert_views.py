"""Pure builders for alerting: the alert message, the rule/state list, reminders, mitigation checks."""

from __future__ import annotations

import math
from datetime import datetime

from llm_incident.alerts.baselines import LEARNING
from llm_incident.alerts.evaluate import OK, Observation, ratio
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.alerts.rules import AlertRule
from llm_incident.commands.replies import Actions, Button, Note, Reply, Section
from llm_incident.commands.views import duration, when
from llm_incident.metrics.compare import fmt

ICON = {"critical": "🔴", "warning": "🟠", "ok": "✅"}
_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """`▁▂▇█`-style line of the values (a gap "·" where there is no value)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    step = (high - low) or 1.0
    return "".join("·" if v is None else _BARS[min(7, int((v - low) / step * 7 + 0.5))]
                   for v in values)


def times(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "∞ (baseline 0)" if math.isinf(value) else f"{value:.1f}×"


def change(note: AlertNotification, rule: AlertRule | None) -> float | None:
    """How far the value is from the baseline, in the rule's direction (drop: baseline ÷ now)."""
    if rule is not None and rule.compare == "drop":
        return ratio(note.baseline, note.value)
    return ratio(note.value, note.baseline)


def onset_text(onset: datetime | None) -> str:
    return f" since {onset:%H:%M}" if onset is not None else ""


def alert_text(note: AlertNotification, rule: AlertRule | None) -> str:
    """The one-line summary, e.g. "🔴 CRITICAL flagged rate on `support.reply`: 12.4% vs 1.1%
    (11.3×) since 14:05"."""
    kind = rule.watched.kind if rule else "number"
    now = fmt(note.value, kind)
    against = ""
    if rule is not None and rule.uses_baseline and note.baseline is not None:
        against = f" vs {fmt(note.baseline, kind)} ({times(change(note, rule))})"
    if note.level == OK:
        if note.reason and note.reason.startswith("not judged"):
            return (f"{ICON[OK]} RESOLVED {note.label} on `{note.route}`: {note.reason} "
                    f"(was {note.previous_level})")
        return (f"{ICON[OK]} RESOLVED {note.label} on `{note.route}`: back to {now}{against} "
                f"(was {note.previous_level})")
    return (f"{ICON[note.level]} {note.level.upper()} {note.label} on `{note.route}`: "
            f"{now}{against}{onset_text(note.onset)}")


def alert_reply(note: AlertNotification, rule: AlertRule | None, *, trend: str = "",
                incident: int | None = None, started_by: str | None = None) -> Reply:
    """The alert as posted (alert channel, the open incident's thread, the console); with
    `started_by`, as it reads once someone started incident `incident` from it (no Start
    button)."""
    kind = rule.watched.kind if rule else "number"
    over = f"since {note.onset:%H:%M}" if note.onset is not None and note.level != OK else (
        f"over {note.window}")
    fields = [("Now", f"{fmt(note.value, kind)} {over} ({note.calls:,} calls)")]
    if rule is not None and rule.uses_baseline:
        fields.append(("Baseline", f"{fmt(note.baseline, kind)} ({note.basis or rule.baseline})"))
        fields.append(("Change", times(change(note, rule))))
    if note.onset is not None and note.level != OK:
        fields.append(("Began", f"{when(note.onset)} ({duration(note.ts - note.onset)} before "
                                "this alert)"))
    if note.reason:
        fields.append(("Why", note.reason))
    if rule is not None:
        unit = "×" if rule.uses_baseline else ""
        fields.append(("Levels", f"warning {_level(rule.warning, rule, unit)} · "
                                 f"critical {_level(rule.critical, rule, unit)}"))
    if trend:
        fields.append(("Trend", f"`{trend}` (last {len(trend)} windows)"))
    blocks: list = [Section(title=alert_text(note, rule), fields=tuple(fields))]
    buttons = [Button("Metrics", f"metrics {note.route} 1h")]
    if note.level != OK and incident is None:
        buttons.insert(0, Button("Start incident", f"alerts start {note.id}", style="primary"))
    blocks.append(Actions(tuple(buttons)))
    if started_by is not None:
        blocks.append(Section(text=f"→ Incident #{incident} started from this alert by "
                                   f"<@{started_by}>"))
    blocks.append(Note(f"rule `{note.rule_id}` · alert {note.id} · {when(note.ts)}"))
    return Reply(text=alert_text(note, rule), blocks=tuple(blocks), ephemeral=False)


def _level(value: float, rule: AlertRule, unit: str) -> str:
    return f"{value:g}{unit}" if unit else fmt(value, rule.watched.kind)


def alerts_list_reply(rules: tuple[AlertRule, ...], stored: list[AlertState], *,
                      channel: str | None, interval: int,
                      observations: list[Observation] | None = None) -> Reply:
    """`/llm-incident alerts`: the rules, every route not at `ok` (with its onset), then what
    the evaluation now sees short of firing: pending warnings, learning, not judged."""
    where = (f"posted to <#{channel}>" if channel else
             "shown here, in `llm-incident alerts check`, in the console and in an open "
             "incident's thread (LLM_INCIDENT_ALERT_CHANNEL is unset, so not to a channel)")
    head = f"Alerts are evaluated every {interval} s and {where}."
    lines = [f"• `{r.id}`: {r.describe()}" for r in rules]
    blocks: list = [Section(title=f"Alert rules ({len(rules)})", text=head + "\n" + "\n".join(lines))]
    firing = [s for s in stored if s.level != OK]
    if firing:
        by_id = {r.id: r for r in rules}
        rows = []
        for s in firing:
            rule = by_id.get(s.rule_id)
            kind = rule.watched.kind if rule else "number"
            began = f" (began {s.onset:%H:%M})" if s.onset is not None else ""
            rows.append(f"{ICON.get(s.level, '')} `{s.route}` {s.rule_id}: {fmt(s.value, kind)}"
                        f" since {when(s.since)}{began}")
        blocks.append(Section(title="Firing", text="\n".join(rows)))
    else:
        blocks.append(Section(text="Nothing is firing."))
    if observations:
        blocks.extend(_watching(observations))
    return Reply(text=f"{len(rules)} alert rules, {len(firing)} firing", blocks=tuple(blocks))


def _watching(observations: list[Observation], limit: int = 10) -> list[Section]:
    """Pending warnings, learning rules and unjudged ones of the current evaluation."""
    groups = {
        "Pending (a warning the next evaluation confirms)":
            [o for o in observations if o.pending],
        "Learning (no baseline with enough history yet)":
            [o for o in observations if o.status == LEARNING],
    }
    sections = []
    for title, items in groups.items():
        if items:
            rows = [f"• `{o.route}` {o.rule.id}: {o.basis or o.reason}" if o.pending else
                    f"• `{o.route}` {o.rule.id}: {o.reason.removeprefix(LEARNING + ': ')}"
                    for o in items[:limit]]
            if len(items) > limit:
                rows.append(f"… and {len(items) - limit} more")
            sections.append(Section(title=f"{title}: {len(items)}", text="\n".join(rows)))
    unjudged = sum(o.level is None and o.status != LEARNING for o in observations)
    if unjudged:
        sections.append(Section(text=f"{unjudged} rule × route check(s) not judged now (too few "
                                     "calls); `llm-incident alerts check --all` lists them."))
    return sections
