"""Pure builders for alerting: the alert message, the rule/state list, reminders, mitigation checks."""

from __future__ import annotations

import math

from llm_incident.alerts.evaluate import OK, ratio
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.alerts.rules import AlertRule
from llm_incident.commands.replies import Actions, Button, Note, Reply, Section
from llm_incident.commands.views import when
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


def alert_text(note: AlertNotification, rule: AlertRule | None) -> str:
    """The one-line summary, e.g. "🔴 CRITICAL flagged rate on `support.reply`: 12.4% vs 1.1%"."""
    kind = rule.watched.kind if rule else "number"
    now = fmt(note.value, kind)
    against = ""
    if rule is not None and rule.compare == "ratio":
        against = (f" vs {fmt(note.baseline, kind)} {rule.baseline} baseline "
                   f"({times(ratio(note.value, note.baseline))})")
    if note.level == OK:
        return (f"{ICON[OK]} RESOLVED {note.label} on `{note.route}`: back to {now}{against} "
                f"(was {note.previous_level})")
    return f"{ICON[note.level]} {note.level.upper()} {note.label} on `{note.route}`: {now}{against}"


def alert_reply(note: AlertNotification, rule: AlertRule | None, *, trend: str = "",
                incident: int | None = None, started_by: str | None = None) -> Reply:
    """The alert as posted (alert channel, or the open incident's thread); with `started_by`, as
    it reads once someone started incident `incident` from it (no Start button)."""
    kind = rule.watched.kind if rule else "number"
    fields = [("Now", f"{fmt(note.value, kind)} over {note.window} ({note.calls:,} calls)")]
    if rule is not None and rule.compare == "ratio":
        fields.append(("Baseline", f"{fmt(note.baseline, kind)} ({rule.baseline})"))
        fields.append(("Change", times(ratio(note.value, note.baseline))))
    if rule is not None:
        unit = "×" if rule.compare == "ratio" else ""
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


def alerts_list_reply(rules: tuple[AlertRule, ...], stored: list[AlertState], *, enabled: bool,
                      interval: int) -> Reply:
    """`/llm-incident alerts`: the rules, then every route not at `ok`."""
    head = (f"Alerts are evaluated every {interval} s." if enabled else
            "Alerts are off: set LLM_INCIDENT_ALERT_CHANNEL to post them.")
    lines = [f"• `{r.id}`: {r.describe()}" for r in rules]
    blocks: list = [Section(title=f"Alert rules ({len(rules)})", text=head + "\n" + "\n".join(lines))]
    firing = [s for s in stored if s.level != OK]
    if firing:
        by_id = {r.id: r for r in rules}
        rows = []
        for s in firing:
            rule = by_id.get(s.rule_id)
            kind = rule.watched.kind if rule else "number"
            rows.append(f"{ICON.get(s.level, '')} `{s.route}` {s.rule_id}: {fmt(s.value, kind)}"
                        f" since {when(s.since)}")
        blocks.append(Section(title="Firing", text="\n".join(rows)))
    else:
        blocks.append(Section(text="Nothing is firing."))
    return Reply(text=f"{len(rules)} alert rules, {len(firing)} firing", blocks=tuple(blocks))
