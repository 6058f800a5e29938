"""Follow-ups derived from what happened in an incident (a pure function of the postmortem data).

Rules, in this order:
- evidence labelled bad → add evals from it (`llm-incident export-labels --incident N`);
  nothing attached → capture examples next time;
- the attributed cause (`Postmortem.culprit`: the triage's attribution and likely cause, never
  simply the newest change) → fix it; a token clamp still on its route → keep it or fix that;
- errors or retries rose on a route (during vs baseline) → a retry cap in the client;
- p95 tokens_out or the flagged rate jumped → an alert on it; flagged rate → guardrails too;
- every mitigation still active → restore it or make it permanent.

"Rose" / "jumped": at least `MULTIPLE`× the baseline (compare.MULTIPLE) and, for rates, at least
`MIN_RATE_RISE` higher; a route without baseline traffic is not compared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_incident.metrics.compare import MULTIPLE, fmt
from llm_incident.metrics.stats import WindowStats

if TYPE_CHECKING:
    from llm_incident.incidents.postmortem_model import Postmortem

MIN_RATE_RISE = 0.02  # 2 percentage points


def rose(base: float | None, now: float | None, *, rate: bool) -> bool:
    """True when `now` is at least MULTIPLE× `base` (and MIN_RATE_RISE higher for rates)."""
    if base is None or now is None:
        return False
    if rate and now - base < MIN_RATE_RISE:
        return False
    return now >= base * MULTIPLE and now > base


def _moved(base: WindowStats | None, now: WindowStats | None, stat: str, kind: str
           ) -> str | None:
    """"a → b" when `stat` rose from the baseline to `now`, else None."""
    if base is None or now is None or base.empty or now.empty:
        return None
    before, after = getattr(base, stat), getattr(now, stat)
    if not rose(before, after, rate=kind == "rate"):
        return None
    return f"{fmt(before, kind)} → {fmt(after, kind)}"


def derive_follow_ups(pm: Postmortem) -> list[str]:
    """The checklist lines, in a stable order (see the module docstring)."""
    lines: list[str] = []
    counts = pm.evidence_counts
    if counts.bad:
        line = (f"Add evals from the {counts.bad} event{'s' * (counts.bad != 1)} labelled bad "
                f"(`llm-incident export-labels --incident {pm.number}`)")
        if counts.good:
            line += f"; keep the {counts.good} labelled good as regression cases"
        lines.append(line)
    elif not counts.attached:
        lines.append("Capture and label 5–10 example events next time (none were attached)")
    culprit = pm.culprit
    if culprit is not None:
        change = (f"{culprit.kind} change {culprit.ref or culprit.description} at "
                  f"{culprit.ts:%H:%M} UTC" if culprit.ts is not None and culprit.kind else None)
        lines.append(f"Fix or roll back {culprit.name} on `{culprit.route}` — the likely cause"
                     + (f" ({change})" if change else ""))
        for active in pm.still_active:
            if active.max_tokens is not None and active.route == culprit.route:
                lines.append(f"Decide: keep the token clamp on `{active.route}` "
                             f"({active.max_tokens:,} tokens) or fix {culprit.name}")
    for metrics in pm.metrics:
        base, during = metrics.baseline, metrics.during or metrics.after
        route = f"`{metrics.route}`"
        errors = _moved(base, during, "error_rate", "rate")
        retries = _moved(base, during, "retry_share", "rate")
        if errors or retries:
            detail = "; ".join(x for x in (errors and f"error rate {errors}",
                                           retries and f"retry share {retries}") if x)
            lines.append(f"Add a retry cap to the client for {route} ({detail})")
        tokens = _moved(base, during, "p95_tokens_out", "count")
        if tokens:
            lines.append(f"Alert on p95 tokens_out jumps for {route} ({tokens})")
        flagged = _moved(base, during, "flagged_rate", "rate")
        if flagged:
            lines.append(f"Alert on flagged-rate jumps and tighten guardrails for {route} "
                         f"({flagged})")
    for active in pm.still_active:
        env = "" if active.env == "prod" else f" ({active.env})"
        lines.append(f"Restore or make permanent: `{active.route}`{env} {active.description}")
    return lines
