"""The dashboard's chart buckets (one grouped query) give what `stats_for` gives for each bucket's
window, on both backends: calls, flagged rate, p95 duration, p95 tokens_out, total cost; ranges
past the exact threshold from rollups (what `stats_for(path="rollups")` gives, within 1 % of exact)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.dashboard.ranges import RANGES
from llm_incident.dashboard.series import flagged_sparklines, route_series
from llm_incident.events.ingest import ingest_events
from llm_incident.metrics.rollup_stats import route_counts
from llm_incident.metrics.stats import stats_for
from llm_incident.rollups.build import roll_up

NOW = datetime(2026, 11, 26, 14, 0, 30, tzinfo=timezone.utc)


def _events(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = NOW - timedelta(seconds=rnd.uniform(0, 7 * 3600))
        out.append({
            "event_id": f"e{i}", "route": rnd.choice(("a", "a", "b")), "ts": ts.isoformat(),
            "model": "m", "tokens_in": 10,
            "tokens_out": None if rnd.random() < 0.1 else rnd.randrange(1, 5000),
            "duration_ms": None if rnd.random() < 0.1 else round(rnd.uniform(1, 9000), 3),
            "status": "flagged" if rnd.random() < 0.2 else "ok",
            "contains_banned": rnd.random() < 0.05,
            "cost_usd": None if rnd.random() < 0.2 else rnd.uniform(0, 0.01)})
    # one on a bucket's very edge, one 300 µs before another (SQLite's own clock reading rounds
    # that to the edge), one just before the window's end
    out.append({"event_id": "edge", "route": "a", "ts": (RANGES["6h"].edges(NOW)[3]).isoformat()})
    out.append({"event_id": "before-edge", "route": "a", "status": "flagged",
                "ts": (RANGES["6h"].edges(NOW)[5] - timedelta(microseconds=300)).isoformat()})
    out.append({"event_id": "last", "route": "a",
                "ts": (RANGES["6h"].window(NOW).end - timedelta(microseconds=1)).isoformat()})
    return out


@pytest.mark.parametrize("range_name", ["1h", "6h", "24h"])
def test_buckets_match_stats_for_each_window(db, range_name):
    with db.write() as session:
        ingest_events(session, _events(1500, seed=3), now=NOW)
    edges = RANGES[range_name].edges(NOW)
    with db.read() as session:
        got = route_series(session, "a", edges)
        assert len(got) == RANGES[range_name].buckets
        for bucket, left, right in zip(got, edges[:-1], edges[1:], strict=True):
            want = stats_for(session, "a", left, right)
            assert (bucket.start, bucket.end) == (left, right)
            assert bucket.calls == want.calls
            assert bucket.flagged_rate == want.flagged_rate
            assert bucket.p95_tokens_out == want.p95_tokens_out
            assert bucket.p95_duration_ms == pytest.approx(want.p95_duration_ms, abs=1e-6)
            assert bucket.total_cost_usd == pytest.approx(want.total_cost_usd, rel=1e-12)
        assert sum(b.calls for b in got) == stats_for(session, "a", edges[0], edges[-1]).calls


def test_sparklines_count_each_routes_flagged_share_per_bucket(db):
    with db.write() as session:
        ingest_events(session, _events(600, seed=5), now=NOW)
    start, end = NOW - timedelta(hours=6), NOW
    with db.read() as session:
        lines = flagged_sparklines(session, start, end, 30)
        step = (end - start) / 30
        for route in ("a", "b"):
            want = [stats_for(session, route, start + i * step, start + (i + 1) * step).flagged_rate
                    for i in range(30)]
            assert lines[route] == pytest.approx(want)


def _rolled_up(db, hours: int, n: int = 1500) -> None:
    rnd = random.Random(11)
    events = _events(n, seed=7)
    for e in events:  # spread over `hours` before NOW
        e["ts"] = (NOW - timedelta(seconds=rnd.uniform(0, hours * 3600))).isoformat()
    with db.write() as session:
        ingest_events(session, events, now=NOW)
    roll_up(db, NOW + timedelta(minutes=2))


@pytest.mark.parametrize("range_name", ["24h", "7d", "30d"])
def test_long_ranges_come_from_rollups_as_stats_for_gives_them(db, range_name):
    _rolled_up(db, hours={"24h": 26, "7d": 24 * 8, "30d": 24 * 31}[range_name])
    edges = RANGES[range_name].edges(NOW)
    with db.read() as session:
        got = route_series(session, "a", edges, now=NOW)
        assert len(got) == RANGES[range_name].buckets and all(b.approximate for b in got)
        busy = 0
        for bucket, left, right in zip(got, edges[:-1], edges[1:], strict=True):
            want = stats_for(session, "a", left, right, path="rollups")
            exact = stats_for(session, "a", left, right, path="exact")
            assert bucket.calls == want.calls == exact.calls
            assert bucket.flagged_rate == want.flagged_rate == exact.flagged_rate
            if want.approximate:  # (not the 30 d chart's last bucket: 4 h past the rollups)
                assert bucket.p95_tokens_out == want.p95_tokens_out
                assert bucket.p95_duration_ms == want.p95_duration_ms
            assert bucket.total_cost_usd == pytest.approx(exact.total_cost_usd, rel=1e-9)
            if exact.p95_duration_ms is not None:
                busy += 1
                assert bucket.p95_duration_ms == pytest.approx(exact.p95_duration_ms, rel=0.01)
                assert abs(bucket.p95_tokens_out - exact.p95_tokens_out) <= (
                    0.01 * exact.p95_tokens_out + 0.5)
        assert busy >= 10
        assert sum(b.calls for b in got) == stats_for(session, "a", edges[0], edges[-1],
                                                      path="exact").calls


@pytest.mark.parametrize("range_name", ["24h", "30d"])
def test_long_sparklines_from_rollups_count_what_the_events_hold(db, range_name):
    _rolled_up(db, hours={"24h": 26, "30d": 24 * 31}[range_name], n=900)
    window = RANGES[range_name].spark_window(NOW)
    step = (window.end - window.start) / 30
    with db.read() as session:
        assert route_counts(session, [window.start + i * step for i in range(31)]) is not None
        lines = flagged_sparklines(session, window.start, window.end, 30)
        for route in ("a", "b"):
            want = [stats_for(session, route, window.start + i * step,
                              window.start + (i + 1) * step, path="exact").flagged_rate
                    for i in range(30)]
            assert lines[route] == want
            assert sum(v is not None for v in want) >= 20
