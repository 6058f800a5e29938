"""The raw parts of a rollup read (sub-minute edges) on both backends: each span is read with a
ts-bounded plan (not the route's whole index range, as an OR of the spans gave on SQLite), and
windows, a chart's buckets and per-route counts with seconds at their edges still equal the exact
path when the route holds events far outside them and exactly on the edges."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest

from llm_incident.metrics.rollup_stats import rollup_buckets, route_counts
from llm_incident.metrics.stats import stats_for
from llm_incident.rollups.build import roll_up
from tests.integration.test_metrics_stats import NOW, _random_events, _store
from tests.integration.test_metrics_two_paths import _assert_agree
from tests.support import recorded_statements

ROUTE = "support.reply"
# A day-long chart whose edges fall between minutes: raw parts at every edge.
EDGES = [NOW - timedelta(hours=26, seconds=-30), NOW - timedelta(hours=17, minutes=3, seconds=15),
         NOW - timedelta(hours=9, seconds=45), NOW - timedelta(hours=2, minutes=30, seconds=1),
         NOW - timedelta(seconds=20)]


def _seed(db) -> None:
    rnd = random.Random(20)
    events = _random_events(rnd, ROUTE, 1200, NOW - timedelta(hours=26), timedelta(hours=26))
    events += _random_events(rnd, ROUTE, 300, NOW - timedelta(days=5), timedelta(days=3))
    events += _random_events(rnd, "search.answer", 400, NOW - timedelta(hours=26),
                             timedelta(hours=26))
    events += [{"route": r, "ts": ts, "status": "flagged", "duration_ms": 5.0, "model": "gpt-4o"}
               for r in (ROUTE, "search.answer") for edge in EDGES
               for ts in (edge - timedelta(microseconds=1), edge, edge + timedelta(seconds=1))]
    _store(db, [e for e in events if e["ts"] < NOW])
    roll_up(db, NOW + timedelta(minutes=2))


def _events_scans(db, statement: str, params) -> list[str]:
    """How the plan reads `events` in `statement`: one line per scan of it."""
    with db.read() as session:
        conn = session.connection()
        if db.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            return [r[-1] for r in rows if " events " in f"{r[-1]} "]
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        (plan,), = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params).all()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        scans, todo = [], [plan[0]["Plan"]]
        while todo:
            node = todo.pop()
            todo += node.get("Plans", [])
            if node.get("Relation Name", "").startswith("events"):
                scans.append(f"{node['Node Type']} {node.get('Index Cond', '')}"
                             f"{node.get('Recheck Cond', '')}{node.get('Filter', '')}")
        return scans


def test_each_raw_edge_is_read_within_its_ts_range(db):
    _seed(db)
    with recorded_statements(db) as statements, db.read() as session:
        assert rollup_buckets(session, ROUTE, EDGES) is not None
        assert route_counts(session, EDGES) is not None
    seen = [(statement, params) for statement, params in statements
            if " events" in statement and "event_rollups" not in statement]
    assert len(seen) == 2  # the route's raw parts, and every route's
    for statement, params in seen:
        scans = _events_scans(db, statement, params)
        assert scans, statement
        for scan in scans:
            assert "Seq Scan" not in scan and "SCAN events" not in scan, scan
            if db.engine.dialect.name == "sqlite":
                assert "ts>?" in scan and "ts<?" in scan, scan
            else:
                assert "ts >=" in scan and "ts <" in scan, scan


def test_buckets_and_route_counts_with_seconds_at_their_edges_equal_the_exact_path(db):
    _seed(db)
    with db.read() as session:
        buckets = rollup_buckets(session, ROUTE, EDGES)
        counts = route_counts(session, EDGES)
        assert buckets is not None and counts is not None
        for i, (start, end) in enumerate(zip(EDGES, EDGES[1:], strict=False)):
            exact = stats_for(session, ROUTE, start, end, path="exact")
            got = buckets[i]
            assert (got.calls, got.flagged, got.errors, got.retries, got.priced) == (
                exact.calls, exact.flagged, exact.errors, exact.retries, exact.priced_calls)
            assert got.cost == pytest.approx(exact.total_cost_usd, rel=1e-9)
            for route in (ROUTE, "search.answer"):
                other = stats_for(session, route, start, end, path="exact")
                assert counts[route][i] == [other.calls, other.flagged], (route, i)
        window = stats_for(session, ROUTE, EDGES[0], EDGES[-1], path="rollups")
        _assert_agree(stats_for(session, ROUTE, EDGES[0], EDGES[-1], path="exact"), window)
