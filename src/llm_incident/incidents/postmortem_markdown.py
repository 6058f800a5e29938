"""The postmortem as Markdown: a pure function of `Postmortem`, byte for byte the same for the same
data. Sections follow the runbook template (Summary, Triage, Mitigations, Evidence, Follow-ups),
then the timeline. Times are UTC; Slack mentions (`<@U1>`) become `@U1`.
"""

from __future__ import annotations

import re
from typing import Any

from llm_incident.incidents.postmortem_model import (
    ChangeRow,
    Entry,
    Postmortem,
    RouteMetrics,
)
from llm_incident.incidents.postmortem_phrases import (
    action_text,
    change_text,
    due_at,
    span,
    when,
)
from llm_incident.incidents.runbook import EVIDENCE, FOLLOW_UPS, SUMMARY, TRIAGE
from llm_incident.metrics.compare import COMPARED, MULTIPLE, fmt

MITIGATIONS = "Mitigations"  # the runbook's "Mitigation options", as taken
TABLE_STATS = ("calls", "flagged_rate", "error_rate", "p95_duration_ms", "p95_tokens_out",
               "avg_tokens_in", "avg_tokens_out", "cost_per_call_usd", "retry_share")
TIMELINE_LIMIT = 100
CELL_CHARS = 200
_MENTION = re.compile(r"<([@#!])([^>|]+)(?:\|[^>]*)?>")


def render_markdown(pm: Postmortem) -> str:
    """The full postmortem draft (ends with one newline)."""
    parts = [_title(pm), _summary(pm), _triage(pm), _mitigations(pm), _evidence(pm),
             _follow_ups(pm), _timeline(pm), *_after_close(pm)]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


# --- formatting helpers ----------------------------------------------------------------------


def plain(text: str) -> str:
    """Slack markup to plain text: `<@U1>` → `@U1`, `<#C1|name>` → `#C1`."""
    return _MENTION.sub(lambda m: m.group(1) + m.group(2), text)


def cell(value: Any) -> str:
    """A value fit for a Markdown table cell: one line, pipes escaped, at most CELL_CHARS."""
    text = " ".join(plain("" if value is None else str(value)).split())
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|") or "—"


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]], align: str = "") -> str:
    """A Markdown table; `align` gives one of l/r per column (default all left)."""
    marks = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def delta_text(stat: str, now: float | None, base: float | None) -> str:
    """Change vs baseline: `+2.0 pts` for rates, `8.1×` for big moves, else `+12%`."""
    if now is None or base is None:
        return "—"
    if COMPARED[stat][1] == "rate":
        points = round((now - base) * 100, 1)
        return "±0.0 pts" if points == 0 else f"{points:+.1f} pts"
    if base == 0:
        return "±0%" if now == 0 else "new"
    ratio = now / base
    if ratio >= MULTIPLE:
        return f"{ratio:.1f}×"
    percent = round((ratio - 1) * 100)
    return "±0%" if percent == 0 else f"{percent:+d}%"


def _bullets(lines: list[str], empty: str) -> str:
    return "\n".join(f"- {line}" for line in lines) if lines else empty


# --- sections --------------------------------------------------------------------------------


def _title(pm: Postmortem) -> str:
    head = f"# Postmortem — incident #{pm.number}: {plain(pm.symptom) or 'no symptom given'}"
    if pm.draft:
        head += (f"\n\n> **Draft as of {when(pm.as_of)}**: the incident is still open; numbers "
                 "run up to that time.")
    return head


def _summary(pm: Postmortem) -> str:
    routes = ", ".join(f"`{r}`" for r in pm.routes) or "none named"
    customers = ", ".join(pm.customer_tiers) or "not recorded"
    if pm.envs:
        customers += f" (envs: {', '.join(pm.envs)})"
    first = "none (nothing was mitigated)"
    if pm.first_mitigation_at is not None and pm.time_to_mitigate is not None:
        first = f"{when(pm.first_mitigation_at)} (time to mitigate: {span(pm.time_to_mitigate)})"
    closed = when(pm.closed_at) if pm.closed_at else f"still open (as of {when(pm.as_of)})"
    active = ("; ".join(f"`{a.route}`{'' if a.env == 'prod' else f' ({a.env})'} {a.description}"
                        for a in pm.still_active)
              or "none: every impacted route is back to its default controls")
    spend = extra_spend(pm)
    rows = [
        ("Symptom", plain(pm.symptom) or "not given"),
        ("Class / severity", f"{pm.incident_class} / {pm.severity}"),
        ("Commander", f"@{pm.commander}"),
        ("Affected routes", routes),
        ("Affected customers", customers),
        *_began_rows(pm),
        ("First mitigation", first),
        ("Closed", closed),
        ("Duration", span(pm.duration)),
        *((("Extra spend", spend),) if spend else ()),
        ("Current mitigation" if pm.draft else "Mitigation at close", active),
    ]
    out = [f"## {SUMMARY}", "\n".join(f"- **{name}:** {text}" for name, text in rows)]
    out += ["### Closing summary", plain(pm.summary) if pm.summary else
            ("_Not closed yet._" if pm.draft else "_No summary given at close._")]
    out += ["### Status updates",
            _bullets([f"{when(e.ts)} — @{plain(e.actor)}: {plain(e.text)}"
                      for e in pm.status_updates], "_None posted._")]
    return "\n\n".join(out)


def extra_spend(pm: Postmortem) -> str | None:
    """`$12.40 over the baseline rate ($18.90 spent vs $6.50 expected)` for a cost incident:
    spend from the start to the end minus the baseline's cost per second × that span, summed over
    its routes (priced calls only); None for other classes or without a span."""
    if pm.incident_class != "cost" or not pm.spend:
        return None
    spent = sum(s.incident_usd for s in pm.spend)
    expected = sum(s.expected_usd for s in pm.spend)
    extra = spent - expected
    word = "over" if extra >= 0 else "under"
    return (f"{money(abs(extra))} {word} the baseline rate ({money(spent)} spent vs "
            f"{money(expected)} expected)")


def money(usd: float) -> str:
    """`$12.40`, `$0.0420` (never `-$0.00`: callers pass the size)."""
    usd = abs(usd) if abs(usd) >= 0.00005 else 0.0
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.4f}"



def _began_rows(pm: Postmortem) -> list[tuple[str, str]]:
    """Start time, and with an onset: when it began, the detection lag and the triage's words."""
    if pm.onset_at is None or pm.detection_lag is None:
        return [("Start time", when(pm.started_at))]
    how = {"since": "given with `since`", "alert": "the onset of the alert that started it"}.get(
        pm.onset_source or "", "detected from the data")
    rows = [("Began", f"{when(pm.began_at)} ({how})"),
            ("Declared", f"{when(pm.started_at)} (detection lag: {span(pm.detection_lag)})")]
    if pm.triage:
        rows.append(("Triage at the start", plain(pm.triage)))
    return rows


def _changes(rows: list[ChangeRow]) -> str:
    return table(("when (UTC)", "route", "kind", "what", "ref", "by"),
                 [(f"{c.ts:%Y-%m-%d %H:%M}", f"`{c.route}`", c.kind, c.description, c.ref,
                   c.author) for c in rows])


def _triage(pm: Postmortem) -> str:
    hours = pm.change_lookback.total_seconds() / 3600
    out = [f"## {TRIAGE}",
           f"### Recent deploys, prompt and model changes ({hours:g} h before the start)",
           _changes(pm.changes_before) if pm.changes_before
           else "_None recorded for these routes._"]
    if pm.changes_during:
        out += ["### Changes recorded during the incident", _changes(pm.changes_during)]
    if pm.culprit is not None:
        out += ["### Likely cause", _culprit(pm)]
    out += ["### Model / provider in use"]
    if pm.usage:
        out.append(table(("route", "model", "provider", "baseline calls", "incident calls"),
                         [(f"`{u.route}`", u.model, u.provider, f"{u.baseline_calls:,}",
                           f"{u.incident_calls:,}") for u in pm.usage], "lllrr"))
    else:
        out.append("_No calls recorded on these routes._")
    if pm.prompt_mix:
        out += ["### Prompt versions in use",
                table(("route", "prompt", "version", "baseline calls", "incident calls"),
                      [(f"`{u.route}`", u.prompt_id, u.prompt_version, f"{u.baseline_calls:,}",
                        f"{u.incident_calls:,}") for u in pm.prompt_mix], "lllrr")]
    out += ["### Metrics: baseline vs during vs after", _windows(pm)]
    for metrics in pm.metrics:
        out += [f"#### `{metrics.route}`", _metrics_table(metrics)]
        unpriced = [(name, s.unpriced_calls) for name in ("baseline", "during", "after")
                    if (s := metrics.phase(name)) is not None and s.unpriced_calls]
        if unpriced:
            out.append("_Cost per call counts priced calls only; unpriced calls (unknown "
                       "model): " + ", ".join(f"{n} {c:,}" for n, c in unpriced) + "._")
    return "\n\n".join(out)


def _culprit(pm: Postmortem) -> str:
    c = pm.culprit
    assert c is not None
    lines = [f"**{c.name}** on `{c.route}`"]
    if c.dimension and c.value:
        lines.append(f"the triage attributes the excess to {c.dimension} {c.value}"
                     + (f" (prompt {c.prompt_id})" if c.prompt_id else ""))
    if c.ts is not None and c.kind:
        lines.append(f"{c.kind} change at {when(c.ts)}: {plain(c.description)}"
                     + (f" (ref {c.ref})" if c.ref else ""))
    return "; ".join(lines) + "."


def _windows(pm: Postmortem) -> str:
    if not pm.phases:
        return "_The incident has no time span yet: no metrics._"
    end = "now" if pm.draft else "close"
    meaning = {"baseline": "same length, just before the start",
               "during": "start → first mitigation" if pm.phase("after") else f"start → {end} "
               "(nothing mitigated)",
               "after": f"first mitigation → {end}"}
    rows = [(p.name, when(p.start), when(p.end), span(p.end - p.start), meaning[p.name])
            for p in pm.phases]
    return (table(("window", "from", "to (exclusive)", "length", "what"), rows) + "\n\n"
            + (f"Events of env `{pm.envs[0]}` only." if len(pm.envs) == 1 else "Events of every env."))


def _metrics_table(metrics: RouteMetrics) -> str:
    base, during, after = metrics.baseline, metrics.during, metrics.after
    rows = []
    for stat in TABLE_STATS:
        label, kind = COMPARED[stat]
        b = getattr(base, stat) if base else None
        d = getattr(during, stat) if during else None
        a = getattr(after, stat) if after else None
        rows.append((label, fmt(b, kind) if base else "—",
                     fmt(d, kind) if during else "—", delta_text(stat, d, b) if during else "—",
                     fmt(a, kind) if after else "—", delta_text(stat, a, b) if after else "—"))
    return table(("metric", "baseline", "during", "Δ during", "after", "Δ after"), rows,
                 "lrrrrr")


def _mitigations(pm: Postmortem) -> str:
    actions = [f"{when(due_at(d, pm.decisions))} — {action_text(d)}"
               + (f" ({d.proof})" if d.proof else "") for d in pm.mitigations]
    out = [f"## {MITIGATIONS}", "### Actions taken",
           _bullets(actions, "_No control changes were applied._"),
           "### Routing and control decisions"]
    if pm.decisions:
        out.append(table(("when (UTC)", "route", "who", "before → after", "outcome", "expires",
                          "reason"),
                         [(f"{due_at(d, pm.decisions):%Y-%m-%d %H:%M}", f"`{d.route}`" + (
                             "" if d.env == "prod" else f" ({d.env})"),
                           "expiry" if d.kind == "expiry" else f"@{d.actor}",
                           change_text(d.before, d.after), d.outcome,
                           f"{d.expires_at:%Y-%m-%d %H:%M}" if d.expires_at else None, d.reason)
                          for d in pm.decisions]))
    else:
        out.append("_No control requests were made for this incident._")
    out += ["### Still active",
            _bullets([f"`{a.route}`{'' if a.env == 'prod' else f' ({a.env})'}: {a.description}"
                      for a in pm.still_active],
                     "_None: every impacted route is back to its default controls._")]
    return "\n\n".join(out)


def _evidence(pm: Postmortem) -> str:
    c = pm.evidence_counts
    out = [f"## {EVIDENCE}",
           f"{c.attached:,} event(s) attached · {c.bad:,} labelled bad · {c.good:,} labelled "
           f"good · {c.unlabelled:,} unlabelled."]
    if pm.evidence:
        out.append(table(("event id", "label", "note", "excerpt (redacted)", "route", "model",
                          "status", "tokens_out", "duration", "labelled by"),
                         [(f"`{e.event_id}`", e.label or "unlabelled", e.note, e.excerpt, e.route,
                           e.model, e.status, None if e.tokens_out is None else f"{e.tokens_out:,}",
                           None if e.duration_ms is None else fmt(e.duration_ms, "ms"),
                           f"@{e.labelled_by}") for e in pm.evidence],
                         "lllllllrrl"))
    if pm.evidence_more:
        out.append(f"_…and {pm.evidence_more:,} more: `llm-incident export-labels --incident "
                   f"{pm.number}` exports them all._")
    return "\n\n".join(out)


def _follow_ups(pm: Postmortem) -> str:
    derived = [f"- [ ] {plain(line)}" for line in pm.follow_ups]
    human = [f"- [ ] {prompt}: _to fill_" for prompt in pm.human_follow_ups]
    out = [f"## {FOLLOW_UPS}", "### From what happened",
           "\n".join(derived) or "_Nothing derived from the data._",
           "### For the team", "\n".join(human)]
    return "\n\n".join(out)


def _entry(e: Entry) -> str:
    return f"- {when(e.ts)} — @{plain(e.actor)} · {e.kind}: {plain(e.text)}"


def _timeline(pm: Postmortem) -> str:
    entries = pm.timeline
    if len(entries) <= TIMELINE_LIMIT:
        lines = [_entry(e) for e in entries]
    else:
        head, tail = entries[: TIMELINE_LIMIT - 10], entries[-10:]
        omitted = len(entries) - len(head) - len(tail)
        lines = [_entry(e) for e in head] + [f"- _… {omitted:,} entries omitted …_"]
        lines += [_entry(e) for e in tail]
    return "\n\n".join(["## Timeline", "\n".join(lines) or "_Empty._"])


def _after_close(pm: Postmortem) -> list[str]:
    """A note under a closed postmortem of what changed since; the postmortem above stays as it
    was at the close."""
    if not pm.after_close or pm.closed_at is None:
        return []
    head = (f"_Not part of the postmortem as closed at {when(pm.closed_at)}, which stays as it "
            "was; noted when this copy was made._")
    return ["\n\n".join(["## After close", head, _bullets(pm.after_close, "")])]
