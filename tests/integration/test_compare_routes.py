"""Every route at once (`compare_routes`, the dashboard overview on long ranges) gives what
`compare_windows` gives route by route, on both backends: same stats, deltas and verdicts, a route
silent in the window included; None where the per-route path would not read rollups."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from llm_incident.dashboard.overview import overview_rows
from llm_incident.dashboard.ranges import RANGES
from llm_incident.metrics import routes_stats as stats_module
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.compare_routes import compare_routes
from llm_incident.metrics.rollup_stats import set_exact_window_max
from llm_incident.rollups.build import roll_up
from tests.integration.test_metrics_stats import NOW, _random_events, _store

ROUTES = ["billing.explain", "search.answer", "silent.now", "support.reply"]
WINDOW = timedelta(hours=9, minutes=30, seconds=20)  # seconds at both edges: raw parts


@pytest.fixture(autouse=True)
def _default_threshold():
    set_exact_window_max(None)
    yield
    set_exact_window_max(None)


def _seed(db) -> None:
    rnd = random.Random(7)
    events = []
    for n, route in zip((900, 400, 0, 1500), ROUTES, strict=True):
        events += _random_events(rnd, route, n, NOW - 2 * WINDOW, 2 * WINDOW)
    # silent.now: calls in the baseline only, and days before it
    events += _random_events(rnd, "silent.now", 200, NOW - 2 * WINDOW, WINDOW / 2)
    events += _random_events(rnd, "silent.now", 50, NOW - timedelta(days=4), timedelta(days=1))
    _store(db, [e for e in events if e["ts"] < NOW])
    roll_up(db, NOW + timedelta(minutes=2))


def _close(got, want) -> None:
    assert got == (want if want is None else pytest.approx(want, rel=1e-6, abs=1e-12))


def _same(got, want) -> None:
    """Equal Comparisons, costs (float sums in another order) to the last digits."""
    a, b = got.to_dict(), want.to_dict()
    for name in ("total_cost_usd", "cost_per_call_usd"):
        for side in ("now", "baseline_stats"):
            _close(a[side].pop(name), b[side].pop(name))
        for key in ("now", "baseline", "abs", "rel"):
            _close(a["deltas"][name].pop(key), b["deltas"][name].pop(key))
        a["deltas"][name].pop("verdict"), b["deltas"][name].pop("verdict")
    assert a == b


def test_every_route_at_once_equals_route_by_route(db):
    _seed(db)
    set_exact_window_max(timedelta(hours=6))
    with db.read() as session:
        for baseline in ("previous", "day"):
            got = compare_routes(session, ROUTES, now=NOW, window=WINDOW, baseline=baseline)
            assert got is not None and list(got) == ROUTES
            for route in ROUTES:
                want = compare_windows(session, route, now=NOW, window=WINDOW, baseline=baseline)
                assert want.now.approximate
                _same(got[route], want)
            silent = got["silent.now"]
            assert silent.now.calls == 0
            assert silent.baseline_stats.calls > 0 or baseline == "day"


def test_short_windows_and_rollups_behind_are_left_to_the_per_route_path(db):
    _seed(db)
    with db.read() as session:
        set_exact_window_max(WINDOW)
        assert compare_routes(session, ROUTES, now=NOW, window=WINDOW) is None
        set_exact_window_max(timedelta(hours=1))
        assert compare_routes(session, ROUTES, now=NOW + timedelta(hours=3), window=WINDOW) is None


def test_the_overview_reads_all_routes_at_once_past_the_threshold(db, monkeypatch):
    _seed(db)
    calls = []
    real = stats_module.routes_rollup_buckets
    monkeypatch.setattr(stats_module, "routes_rollup_buckets",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rng = RANGES["24h"]
    with db.read() as session:
        rows = overview_rows(session, now=NOW, rng=rng)
        assert len(calls) == 2  # the window and its baseline, whatever the number of routes
        for row in rows:
            _same(row.comparison, compare_windows(session, row.route, now=NOW, window=rng.span))
        set_exact_window_max(rng.span)
        calls.clear()
        overview_rows(session, now=NOW, rng=rng)
        assert calls == []
