"""Every route's window against its baseline at once, from rollups: the Comparisons
`compare_windows` gives route by route on its rollup path (windows past `exact_window_max()`,
baselines from rollups), from two reads over all routes (`routes_stats`: one for the
window, one for the baseline) instead of two per route. None when that path does not apply (a
window the exact path answers) or the rollups cannot answer; the caller then compares route by
route."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from llm_incident.metrics.compare import Comparison, deltas
from llm_incident.metrics.rollup_stats import exact_window_max
from llm_incident.metrics.scope import Scope
from llm_incident.metrics.routes_stats import routes_stats
from llm_incident.metrics.windows import Baseline, Window, baseline_for, window_ending


def compare_routes(session: Session, routes: list[str], *, now: datetime,
                   window: timedelta | Window, baseline: str | Window | Baseline = "previous"
                   ) -> dict[str, Comparison] | None:
    """route → `compare_windows(session, route, now=now, window=window, baseline=baseline)`
    for each of `routes`, or None (see the module docstring)."""
    current = window if isinstance(window, Window) else window_ending(now, window)
    if current.span <= exact_window_max():
        return None
    base = baseline_for(current, baseline)
    now_all = routes_stats(session, current.start, current.end)
    if now_all is None:
        return None
    base_all = routes_stats(session, base.window.start, base.window.end)
    if base_all is None:
        return None
    scope = Scope().to_dict()
    out = {}
    for route in routes:
        now_stats, base_stats = now_all[route], base_all[route]
        out[route] = Comparison(route=route, window=current, baseline=base, now=now_stats,
                                baseline_stats=base_stats, deltas=deltas(now_stats, base_stats),
                                scope=scope)
    return out
