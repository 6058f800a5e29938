"""An evaluation's baseline windows: read for every route at once from the second route that asks,
with the numbers `stats_for` gives route by route, on both backends."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import timedelta

import pytest

from llm_incident.alerts.observation import StatsCache
from llm_incident.metrics.stats import stats_for
from llm_incident.metrics.windows import Window
from llm_incident.rollups.build import roll_up
from tests.integration.test_metrics_stats import NOW, _random_events, _store
from tests.support import recorded_statements

DAY = timedelta(days=1)
ROUTES = [f"route-{i}" for i in range(8)]
BASELINE = Window(NOW - DAY - timedelta(minutes=15), NOW - DAY)
TRAILING = Window(NOW - timedelta(hours=3, minutes=15), NOW - timedelta(minutes=15))


def _seed(db, routes: list[str]) -> None:
    rnd = random.Random(11)
    events = []
    for k, route in enumerate(routes):
        events += _random_events(rnd, route, 60 + 40 * k, NOW - 2 * DAY, 2 * DAY)
    _store(db, [e for e in events if e["ts"] < NOW])
    roll_up(db, NOW + timedelta(minutes=2))


def _same(batched, alone) -> None:
    got, want = asdict(batched), asdict(alone)
    for name in ("total_cost_usd", "cost_per_call_usd"):  # sums in another order
        value, expected = got.pop(name), want.pop(name)
        assert value == (expected if expected is None else pytest.approx(expected, rel=1e-12))
    assert got == want


def _rollup_reads(db, ask) -> int:
    with recorded_statements(db) as statements:
        ask()
    return sum("FROM event_rollups" in s or "FROM events" in s for s, _params in statements)


def test_a_shared_baseline_window_is_read_once_for_every_route_with_the_same_numbers(db):
    _seed(db, ROUTES[:6])
    with db.read() as session:
        cache = StatsCache(session, NOW)
        for route in [*ROUTES, "never-seen"]:  # two routes without events among them
            for window in (BASELINE, TRAILING):
                alone = stats_for(session, route, window.start, window.end, path="rollups")
                _same(cache.get(route, window, None, path="rollups"), alone)
                assert alone.approximate
        assert all(cache.get(r, TRAILING, None, path="rollups").calls > 0 for r in ROUTES[:6])
        assert sum(cache.get(r, BASELINE, None, path="rollups").calls for r in ROUTES) > 0
        assert cache.get("never-seen", BASELINE, None, path="rollups").calls == 0


def test_the_reads_do_not_grow_with_the_routes(db):
    _seed(db, ROUTES)
    with db.read() as session:
        def ask(routes: list[str]):
            def run() -> None:
                cache = StatsCache(session, NOW)
                for route in routes:
                    for window in (BASELINE, TRAILING):
                        cache.get(route, window, None, path="rollups")
            return run

        few, many = _rollup_reads(db, ask(ROUTES[:2])), _rollup_reads(db, ask(ROUTES))
        # a window one route asks for is read for it alone; one with a filter route by route
        lone = _rollup_reads(db, lambda: StatsCache(session, NOW).get(
            ROUTES[0], BASELINE, None, path="rollups"))
        filtered = _rollup_reads(db, lambda: [StatsCache(session, NOW).get(
            r, BASELINE, 'env = "prod"', path="rollups") for r in ROUTES[:3]])
    assert few == many > 0
    assert lone > 0 and filtered >= 3


def test_before_the_rollups_have_caught_up_each_route_is_read_exactly(db):
    rnd = random.Random(12)
    _store(db, [e for r in ROUTES[:3] for e in _random_events(rnd, r, 200, NOW - DAY, DAY)
                if e["ts"] < NOW])  # no roll-up yet
    with db.read() as session:
        cache = StatsCache(session, NOW)
        for route in ROUTES[:3]:
            got = cache.get(route, TRAILING, None, path="rollups")
            assert not got.approximate and got.calls > 0
            assert got == stats_for(session, route, TRAILING.start, TRAILING.end, path="exact")
