"""Every route's rollup-path stats over one window at once: what `stats_for(path="rollups")`
answers route by route, from one read per source (an evaluation's shared baseline windows, the
overview's comparisons)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from llm_incident.metrics.rollup_stats import Totals, routes_rollup_buckets
from llm_incident.metrics.stats import WindowStats, stats_from_totals


class RoutesStats(dict[str, WindowStats]):
    """route → the rollup path's stats over one window, for every route at once; a route
    without rollup rows there had no calls (what `stats_for` answers for it)."""

    def __init__(self, start: datetime, end: datetime, totals: dict[str, list[Totals]]) -> None:
        super().__init__((route, stats_from_totals(route, start, end, buckets[0]))
                         for route, buckets in totals.items())
        self.start, self.end = start, end

    def __missing__(self, route: str) -> WindowStats:
        return stats_from_totals(route, self.start, self.end, Totals())


def routes_stats(session: Session, start: datetime, end: datetime) -> RoutesStats | None:
    """`stats_for(path="rollups")` of every route over `[start, end)` from one read per source
    (`routes_rollup_buckets`); None when the rollups cannot answer (each route then takes
    `stats_for`, which falls back to the exact path)."""
    totals = routes_rollup_buckets(session, [start, end])
    return None if totals is None else RoutesStats(start, end, totals)
