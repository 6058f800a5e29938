"""Every route's window against its baseline at once, from rollups: the Comparisons
`compare_windows` gives route by route on its rollup path (windows past `exact_window_max()`,
baselines from rollups), from two reads over all routes (`routes_rollup_buckets`: one for the
window, one for the baseline) instead of two per route. None when that path does not apply (a
window the exact path answers) or the rollups cannot answer; the caller then compares route by
route."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from llm_incident.metrics.compare import Comparison, deltas
from llm_incident.metrics.rollup_stats import Totals, exact_window_max, routes_rollup_buckets
from llm_incident.metrics.scope import Scope
from llm_incident.metrics.stats import WindowStats, stats_from_totals
from llm_incident.metrics.windows import Baseline, Window, baseline_for, window_ending


def _stats(route: str, window: Window, totals: Totals | None) -> WindowStats:
    """What `stats_for` answers from these rollup totals (a route without rows: no calls)."""
    return stats_from_totals(route, window.start, window.end, totals or Totals())


def compare_routes(session: Session, routes: list[str], *, now: datetime,
                   window: timedelta | Window, baseline: str | Window | Baseline = "previous"
                   ) -> dict[str, Comparison] | None:
    """route → `compare_windows(session, route, now=now, window=window, baseline=baseline)`
    for each of `routes`, or None (see the module docstring)."""
    current = window if isinstance(window, Window) else window_ending(now, window)
    if current.span <= exact_window_max():
        return None
    base = baseline_for(current, baseline)
    now_totals = routes_rollup_buckets(session, [current.start, current.end])
    if now_totals is None:
        return None
    base_totals = routes_rollup_buckets(session, [base.window.start, base.window.end])
    if base_totals is None:
        return None
    scope = Scope().to_dict()
    out = {}
    for route in routes:
        now_stats = _stats(route, current, (now_totals.get(route) or [None])[0])
        base_stats = _stats(route, base.window, (base_totals.get(route) or [None])[0])
        out[route] = Comparison(route=route, window=current, baseline=base, now=now_stats,
                                baseline_stats=base_stats, deltas=deltas(now_stats, base_stats),
                                scope=scope)
    return out
