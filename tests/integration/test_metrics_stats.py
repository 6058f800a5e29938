"""Window stats, percentiles, baselines and breakdowns on SQLite and PostgreSQL, against Python."""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.metrics.breakdowns import (
    breakdowns,
    errors_by_model_region,
    model_counts,
    model_mix_change,
    p95_duration_by_model,
    top_prompts,
    volume_by_route,
)
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.filters import compile_filter
from llm_incident.metrics import percentiles as percentiles_module
from llm_incident.metrics.percentiles import (
    nearest_rank,
    percentiles,
    reference_percentile,
    select_ranks,
)
from llm_incident.metrics.scope import C, Scope, event_conditions
from llm_incident.metrics import stats as stats_module
from llm_incident.metrics.stats import stats_for, window_stats
from llm_incident.metrics.windows import Window

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
_ids = itertools.count()


def _store(db, events: list[dict]) -> None:
    for event in events:
        event.setdefault("event_id", f"e{next(_ids)}")
        if isinstance(event.get("ts"), datetime):
            event["ts"] = event["ts"].isoformat()
    with db.write() as session:
        result = ingest_events(session, events, now=NOW)
    assert not result.rejected, result.rejected


def _rows(db, route: str) -> list[Event]:
    with db.read() as session:
        return list(session.exec(select(Event).where(Event.route == route)).scalars())


def _random_events(rnd: random.Random, route: str, n: int, start: datetime, span: timedelta):
    """Events in and around [start, start + span), with NULLs, ties, unpriced models, retries."""
    durations = [12.5, 250.0, 250.0, 999.125, 0.0]
    events = []
    for _ in range(n):
        offset = rnd.choice([0.0, span.total_seconds(), -1.0]) if rnd.random() < 0.1 else \
            rnd.uniform(-0.2, 1.2) * span.total_seconds()
        status = rnd.choice(["ok"] * 6 + ["flagged", "error"])
        event = {
            "route": route,
            "ts": start + timedelta(seconds=offset),
            "env": rnd.choice(["prod", "prod", "staging"]),
            "model": rnd.choice(["gpt-4o-mini", "gpt-4o", "in-house-7b", None]),
            "provider": rnd.choice(["openai", "self"]),
            "region": rnd.choice(["us-east-1", "eu-west-1"]),
            "customer_tier": rnd.choice(["free", "pro"]),
            "tokens_in": rnd.choice([None, rnd.randint(0, 4000), 100]),
            "tokens_out": rnd.choice([None, rnd.randint(0, 3000), 200, 200]),
            "duration_ms": rnd.choice([None, rnd.uniform(0, 20000), rnd.choice(durations)]),
            "status": status,
            "error_code": rnd.choice(["429", "503", None]) if status == "error" else None,
            "contains_banned": rnd.random() < 0.1,
            "attempt": rnd.choice([1, 1, 1, 2, 3]),
            "prompt_id": rnd.choice(["p1", "p2", None]),
            "prompt_version": rnd.choice(["1", "2"]),
        }
        if rnd.random() < 0.2:
            event["cost_usd"] = round(rnd.uniform(0, 0.05), 6)
        events.append(event)
    return events


def _reference(rows: list[Event], start: datetime, end: datetime) -> dict:
    """The stats, computed the plain way from the stored rows."""
    rows = [r for r in rows if start <= r.ts < end]
    calls = len(rows)
    if not calls:
        return {"calls": 0}
    errors = [r for r in rows if r.status == "error" or r.error_code is not None]
    priced = [r for r in rows if r.priced]
    tokens_in = [r.tokens_in for r in rows if r.tokens_in is not None]
    tokens_out = [r.tokens_out for r in rows if r.tokens_out is not None]
    durations = [r.duration_ms for r in rows]
    mix, codes = {}, {}
    for r in rows:
        mix[r.model or "unknown"] = mix.get(r.model or "unknown", 0) + 1
    for r in errors:
        codes[r.error_code or "unknown"] = codes.get(r.error_code or "unknown", 0) + 1
    return {
        "calls": calls,
        "flagged": sum(1 for r in rows if r.status == "flagged" or r.contains_banned),
        "errors": len(errors),
        "error_codes": codes,
        "model_mix": mix,
        "p50_duration_ms": reference_percentile(durations, 50),
        "p95_duration_ms": reference_percentile(durations, 95),
        "p99_duration_ms": reference_percentile(durations, 99),
        "avg_tokens_in": sum(tokens_in) / len(tokens_in) if tokens_in else None,
        "p95_tokens_in": reference_percentile(tokens_in, 95),
        "avg_tokens_out": sum(tokens_out) / len(tokens_out) if tokens_out else None,
        "p95_tokens_out": reference_percentile(tokens_out, 95),
        "total_cost_usd": sum(r.cost_usd for r in priced),
        "priced_calls": len(priced),
        "unpriced_calls": calls - len(priced),
        "retries": sum(1 for r in rows if r.attempt > 1),
    }


def _assert_matches(stats, ref: dict, minutes: float) -> None:
    assert stats.calls == ref["calls"]
    assert stats.calls_per_min == ref["calls"] / minutes
    if not ref["calls"]:
        assert stats.flagged_rate is stats.error_rate is stats.p95_duration_ms is None
        assert stats.cost_per_call_usd is None and stats.model_mix == {}
        return
    exact = ["flagged", "errors", "error_codes", "model_mix", "p50_duration_ms", "p95_duration_ms",
             "p99_duration_ms", "avg_tokens_in", "p95_tokens_in", "avg_tokens_out",
             "p95_tokens_out", "priced_calls", "unpriced_calls", "retries"]
    assert {k: getattr(stats, k) for k in exact} == {k: ref[k] for k in exact}
    assert stats.total_cost_usd == pytest.approx(ref["total_cost_usd"], rel=1e-9, abs=1e-12)
    assert stats.flagged_rate == ref["flagged"] / ref["calls"]
    assert stats.error_rate == ref["errors"] / ref["calls"]
    assert stats.retry_share == ref["retries"] / ref["calls"]
    if ref["priced_calls"]:
        assert stats.cost_per_call_usd == pytest.approx(ref["total_cost_usd"] / ref["priced_calls"])
    else:
        assert stats.cost_per_call_usd is None


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(0, 80))
def test_window_stats_match_python_reference(db, seed, n):
    route = f"r.{seed}.{n}.{next(_ids)}"
    start = NOW - HOUR
    _store(db, _random_events(random.Random(seed), route, n, start, HOUR))
    ref = _reference(_rows(db, route), start, NOW)
    with db.read() as session:
        stats = window_stats(session, route, start, NOW)
    _assert_matches(stats, ref, 60.0)


@pytest.mark.parametrize("python_sort", [True, False], ids=["python-sort", "sql-offset"])
@pytest.mark.parametrize("seed", range(6))
def test_percentiles_equal_reference_for_any_p(db, seed, python_sort, monkeypatch):
    """Every SQLite strategy (bounded top, bounded bottom, full read sorted in Python or
    LIMIT 1 OFFSET k for huge windows) and percentile_disc agree with the reference."""
    if not python_sort:
        monkeypatch.setattr(percentiles_module, "PYTHON_SORT_LIMIT", 0)
    rnd = random.Random(seed)
    route = f"pct.{seed}"
    n = rnd.choice([1, 2, 3, 7, 20, 101, 400])
    pool = [rnd.uniform(0, 1e4) for _ in range(max(1, n // 3))]
    events = [{"route": route, "ts": NOW - timedelta(seconds=i + 1),
               "duration_ms": rnd.choice([None, rnd.choice(pool), rnd.uniform(0, 1e4)]),
               "tokens_out": rnd.randint(0, 50)} for i in range(n)]
    _store(db, events)
    ps = [0, 0.1, 1, 7, 25, 33.3, 50, 66.6, 75, 90, 95, 99, 99.9, 100]
    conds = event_conditions(route, NOW - HOUR, NOW)
    rows = _rows(db, route)
    with db.read() as session:
        got_d = percentiles(session, C.duration_ms, ps, conds)
        got_t = percentiles(session, C.tokens_out, ps, conds)
    assert got_d == {p: reference_percentile([r.duration_ms for r in rows], p) for p in ps}
    assert got_t == {p: reference_percentile([r.tokens_out for r in rows], p) for p in ps}


def test_nearest_rank_on_known_values(db):
    route = "known"
    _store(db, [{"route": route, "ts": NOW - timedelta(minutes=i + 1), "duration_ms": float(v),
                 "tokens_out": v} for i, v in enumerate(range(100, 0, -1))])
    with db.read() as session:
        stats = window_stats(session, route, NOW - HOUR, NOW)
        seven = percentiles(session, C.duration_ms, [7], event_conditions(route, NOW - HOUR, NOW))
    # minutes 1..60 are in the window (the start is included): the 60 values 41..100
    assert (stats.calls, stats.p50_duration_ms, stats.p95_duration_ms) == (60, 70.0, 97.0)
    assert stats.p99_duration_ms == 100.0 and stats.p95_tokens_out == 97
    assert math.ceil(0.07 * 60) == 5  # 4.2 → rank 5
    assert seven == {7: 45.0}


def test_empty_window_is_no_traffic_not_a_division_by_zero(db):
    with db.read() as session:
        stats = window_stats(session, "nothing.here", NOW - HOUR, NOW)
        comparison = compare_windows(session, "nothing.here", now=NOW, window=HOUR)
    assert stats.calls == 0 and stats.calls_per_min == 0.0 and stats.total_cost_usd == 0.0
    assert stats.flagged_rate is None and stats.cost_per_call_usd is None
    assert stats.to_dict()["p95_duration_ms"] is None
    assert all(d.rel is None for d in comparison.deltas.values())
    assert "no traffic" in comparison.deltas["p95_duration_ms"].verdict
    assert comparison.to_dict()["summary"] == [comparison.deltas["calls"].verdict]


def test_unpriced_events_are_counted_but_not_costed(db):
    route = "cost.route"
    _store(db, [
        {"route": route, "ts": NOW - timedelta(minutes=5), "model": "gpt-4o-mini",
         "provider": "openai", "tokens_in": 1000, "tokens_out": 100},
        {"route": route, "ts": NOW - timedelta(minutes=4), "model": "in-house-7b",
         "tokens_in": 1000, "tokens_out": 100},
        {"route": route, "ts": NOW - timedelta(minutes=3), "model": "in-house-7b"},
        {"route": route, "ts": NOW - timedelta(minutes=2), "model": "x", "cost_usd": 0.5},
    ])
    with db.read() as session:
        stats = window_stats(session, route, NOW - HOUR, NOW)
    (mini,) = [r for r in _rows(db, route) if r.model == "gpt-4o-mini"]
    assert mini.priced and mini.cost_usd > 0
    assert (stats.calls, stats.priced_calls, stats.unpriced_calls) == (4, 2, 2)
    assert stats.total_cost_usd == pytest.approx(mini.cost_usd + 0.5)
    assert stats.cost_per_call_usd == pytest.approx((mini.cost_usd + 0.5) / 2)


def test_window_is_half_open_and_narrowing_filters_apply(db):
    route = "narrow"
    _store(db, [
        {"route": route, "ts": NOW - HOUR, "env": "prod", "model": "a", "region": "eu"},
        {"route": route, "ts": NOW, "env": "prod", "model": "a"},  # end excluded
        {"route": route, "ts": NOW - timedelta(minutes=1), "env": "staging", "model": "b",
         "provider": "p2", "customer_tier": "free", "tokens_out": 5000},
        {"route": route, "ts": NOW - timedelta(minutes=2), "env": "prod", "model": "b",
         "provider": "p1", "customer_tier": "pro", "tokens_out": 10, "metadata": {"t": "x"}},
        {"route": "other", "ts": NOW - timedelta(minutes=2)},
    ])
    with db.read() as session:
        def calls(**kw):
            return window_stats(session, route, NOW - HOUR, NOW, **kw).calls
        assert calls() == 3
        assert calls(env="prod") == 2 and calls(model="b") == 2 and calls(provider="p2") == 1
        assert calls(region="eu") == 1 and calls(customer_tier="pro") == 1
        assert calls(env="prod", model="b") == 1
        assert calls(where=compile_filter("tokens_out > 2000", now=NOW)) == 1
        assert calls(where=compile_filter('metadata.t = "x"', now=NOW)) == 1
        assert calls(where=compile_filter("ts >= now - 90s", now=NOW)) == 1
        everything = window_stats(session, None, NOW - HOUR, NOW)
    assert everything.calls == 4 and everything.route is None


def test_baseline_kinds_pick_the_right_windows(db):
    route = "base"
    spots = {"now": NOW - timedelta(minutes=10), "previous": NOW - timedelta(minutes=40),
             "day": NOW - timedelta(days=1, minutes=10), "week": NOW - timedelta(days=7, minutes=10)}
    for name, ts in spots.items():
        count = {"now": 4, "previous": 2, "day": 1, "week": 8}[name]
        _store(db, [{"route": route, "ts": ts, "tokens_out": 100 * count} for _ in range(count)])
    with db.read() as session:
        results = {kind: compare_windows(session, route, now=NOW, window=timedelta(minutes=30),
                                         baseline=kind)
                   for kind in ("previous", "day", "week")}
        explicit = compare_windows(session, route, now=NOW, window=timedelta(minutes=30),
                                   baseline="2026-11-19T13:00:00Z/2026-11-19T14:00:00Z")
    assert {k: c.baseline_stats.calls for k, c in results.items()} == {
        "previous": 2, "day": 1, "week": 8}
    prev = results["previous"]
    assert prev.now.calls == 4 and prev.baseline.kind == "previous"
    assert prev.baseline.window == Window(NOW - timedelta(minutes=60), NOW - timedelta(minutes=30))
    assert prev.deltas["calls"].abs == 2 and prev.deltas["calls"].rel == 1.0
    assert prev.deltas["p95_tokens_out"].verdict == "p95 tokens_out 2.0× baseline (400 vs 200)"
    assert results["week"].deltas["calls"].verdict.startswith("calls down 50%")
    assert explicit.baseline.kind == "range" and explicit.baseline_stats.calls == 8
    assert explicit.to_dict()["baseline"]["start"] == "2026-11-19T13:00:00+00:00"


def test_breakdowns_and_top_prompts(db):
    start = NOW - HOUR
    t = NOW - timedelta(minutes=5)
    events = (
        [{"route": "chat", "ts": t, "model": "slow", "duration_ms": float(d), "region": "eu",
          "prompt_id": "p1", "prompt_version": "1", "cost_usd": 0.01} for d in range(1, 21)]
        + [{"route": "chat", "ts": t, "model": "fast", "duration_ms": 5.0, "region": "us",
            "status": "error", "error_code": "429", "prompt_id": "p1", "prompt_version": "2",
            "cost_usd": 0.1} for _ in range(3)]
        + [{"route": "chat", "ts": t, "model": "fast", "region": "eu", "status": "error",
            "error_code": "503", "prompt_id": "p2"}]
        + [{"route": "search", "ts": t, "model": "fast", "cost_usd": 1.0}]
        + [{"route": "chat", "ts": t - HOUR, "model": "slow"} for _ in range(4)]
    )
    _store(db, events)
    with db.read() as session:
        latency = p95_duration_by_model(session, "chat", start, NOW)
        volume = volume_by_route(session, start, NOW)
        errors = errors_by_model_region(session, "chat", start, NOW)
        prompts = top_prompts(session, "chat", start, NOW)
        mix = model_mix_change(model_counts(session, "chat", start, NOW),
                               model_counts(session, "chat", start - HOUR, start))
        everything = breakdowns(session, "chat", Window(start, NOW),
                                baseline=Window(start - HOUR, start))
        narrowed = top_prompts(session, "chat", start, NOW, scope=Scope(region="us"))
    assert [(m.model, m.calls, m.p95_duration_ms) for m in latency] == [
        ("slow", 20, 19.0), ("fast", 4, 5.0)]
    assert [(v.route, v.calls, v.unpriced_calls) for v in volume] == [
        ("search", 1, 0), ("chat", 24, 1)]
    assert volume[1].total_cost_usd == pytest.approx(0.5)
    assert [(e.model, e.region, e.error_code, e.count) for e in errors] == [
        ("fast", "us", "429", 3), ("fast", "eu", "503", 1)]
    assert [(p.prompt_id, p.prompt_version, p.calls, p.unpriced_calls) for p in prompts] == [
        ("p1", "2", 3, 0), ("p1", "1", 20, 0), ("p2", None, 1, 1)]
    assert prompts[0].total_cost_usd == pytest.approx(0.3)
    assert [(s.model, s.calls, s.baseline_calls) for s in mix] == [("fast", 4, 0), ("slow", 20, 4)]
    assert mix[0].share_change == pytest.approx(4 / 24)
    assert everything.to_dict()["top_prompts"][0]["prompt_id"] == "p1"
    assert everything.to_dict()["model_mix"][0]["model"] == "fast"
    assert [p.prompt_version for p in narrowed] == ["2"]


# --- how the stats are computed: SQLite one-pass vs bounded path, exact durations, select_ranks ---


def _spy(monkeypatch, module, name: str) -> list:
    """Record the calls to `module.name` (still calling it)."""
    calls: list = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


@pytest.mark.parametrize("seed", range(4))
def test_one_pass_and_bounded_path_give_identical_stats(db, seed, monkeypatch):
    """The row limit decides the SQLite path (at the limit: one pass; one over: bounded); both
    agree with each other and with the reference, exactly (cost to rounding of the sum order)."""
    rnd = random.Random(seed)
    route = f"paths.{seed}"
    start = NOW - HOUR
    events = _random_events(rnd, route, rnd.choice([1, 5, 60, 300]), start, HOUR)
    if seed % 2:  # durations a microsecond figure represents exactly: no fallback for them
        for event in events:
            if event["duration_ms"] is not None:
                event["duration_ms"] = round(event["duration_ms"], rnd.choice([0, 1, 3, 6]))
    _store(db, events)
    ref = _reference(_rows(db, route), start, NOW)
    bounded = _spy(monkeypatch, stats_module, "_sqlite_bounded")
    with db.read() as session:
        n = ref["calls"]
        at_limit = stats_for(session, route, start, NOW, fast_path_max_rows=n)
        over_limit = stats_for(session, route, start, NOW, fast_path_max_rows=max(n - 1, 0))
        default = window_stats(session, route, start, NOW)
    if db.backend == "sqlite":
        assert len(bounded) == (1 if n else 3)  # over the limit (an empty window: every call)
    for stats in (at_limit, over_limit, default):
        _assert_matches(stats, ref, 60.0)
    one_pass, other = at_limit.to_dict(), over_limit.to_dict()
    assert one_pass.pop("total_cost_usd") == pytest.approx(other.pop("total_cost_usd"), rel=1e-12)
    assert one_pass == other


def test_durations_travel_as_exact_microseconds_or_fall_back(sqlite_db, monkeypatch):
    """Durations with at most 6 decimals are read in the one pass; one that microseconds cannot
    represent (here 1/3 ms, and a negative one) sends durations to the exact SQL path."""
    db = sqlite_db
    fallback = _spy(monkeypatch, stats_module, "sqlite_percentiles")
    nice = [0.0, 0.1, 2283.3, 7526.5, 1e-6, 123456.789012, 250.0, 250.0, 1e9]
    _store(db, [{"route": "nice", "ts": NOW - timedelta(seconds=i + 1), "duration_ms": d}
                for i, d in enumerate(nice)])
    with db.read() as session:
        stats = window_stats(session, "nice", NOW - HOUR, NOW)
    assert not fallback
    ranks = {p: reference_percentile(nice, p) for p in (50, 95, 99)}
    assert (stats.p50_duration_ms, stats.p95_duration_ms, stats.p99_duration_ms) == (
        ranks[50], ranks[95], ranks[99])

    odd = [*nice, 1 / 3, 2 / 3 + 1000]
    _store(db, [{"route": "odd", "ts": NOW - timedelta(seconds=i + 1), "duration_ms": d}
                for i, d in enumerate(odd)])
    with db.read() as session:
        stats = window_stats(session, "odd", NOW - HOUR, NOW)
    assert len(fallback) == 1
    assert stats.p50_duration_ms == reference_percentile(odd, 50)
    assert stats.p99_duration_ms == reference_percentile(odd, 99) == 1e9


def test_large_window_matches_reference(db):
    """Past SORT_BELOW values per rank the percentiles come from select_ranks' brackets."""
    rnd = random.Random(11)
    route = "large"
    n = 3 * percentiles_module.SORT_BELOW + 37
    pool = [round(rnd.lognormvariate(7, 1), 1) for _ in range(n // 4)]
    _store(db, [{"route": route, "ts": NOW - timedelta(seconds=rnd.uniform(0, 3599)),
                 "duration_ms": rnd.choice([None, rnd.choice(pool)]),
                 "tokens_in": rnd.randint(0, 9000), "tokens_out": rnd.choice([None, 7, 900]),
                 "model": rnd.choice(["a", "b", None])} for _ in range(n)])
    ref = _reference(_rows(db, route), NOW - HOUR, NOW)
    with db.read() as session:
        stats = window_stats(session, route, NOW - HOUR, NOW)
    _assert_matches(stats, ref, 60.0)


@pytest.mark.parametrize("seed", range(40))
def test_select_ranks_equals_sorting(seed):
    """Every branch: plain sort, open and closed brackets, merged brackets, and a sample that
    misleads (every sampled value an outlier) so everything is sorted after all."""
    rnd = random.Random(seed)
    n = rnd.choice([1, 2, 17, 1024, 4096, 4097, 20000])
    kind = seed % 4
    if kind == 0:
        values = [rnd.uniform(0, 1e4) for _ in range(n)]
    elif kind == 1:
        values = [rnd.choice([1, 2, 2, 250, 7]) for _ in range(n)]
    elif kind == 2:
        values = sorted(rnd.randint(0, 10**12) for _ in range(n))
    else:
        values = [rnd.choice([rnd.randint(0, 100), rnd.uniform(0, 100)]) for _ in range(n)]
        values[::percentiles_module.SAMPLE_STEP] = [-1] * len(
            values[::percentiles_module.SAMPLE_STEP])
    ps = rnd.sample([0, 0.1, 1, 7, 25, 50, 75, 90, 95, 99, 99.9, 100], 4)
    ranks = [nearest_rank(p, n) for p in ps]
    before = list(values)
    assert select_ranks(values, ranks) == [sorted(values)[r - 1] for r in ranks]
    assert values == before


def test_model_mix_is_exact_for_any_model_name(db):
    """Model names holding the PostgreSQL separator (or JSON-special characters), NULL models and
    a literal "unknown" model are counted exactly; scoped and filtered calls (other statement
    shapes, built once and reused) agree with the reference too."""
    route = "odd.models"
    names = ["a\x1fb", "a", "b", None, "unknown", 'q"uo\\te', "é,ü", "a\x1fb"]
    _store(db, [{"route": route, "ts": NOW - timedelta(minutes=i + 1), "model": m,
                 "env": "prod" if i % 2 else "staging"} for i, m in enumerate(names)])
    rows = _rows(db, route)
    with db.read() as session:
        stats = window_stats(session, route, NOW - HOUR, NOW)
        for _ in range(2):
            staging = window_stats(session, route, NOW - HOUR, NOW, env="staging")
            where = window_stats(session, route, NOW - HOUR, NOW, where=C.model.is_not(None))
    _assert_matches(stats, _reference(rows, NOW - HOUR, NOW), 60.0)
    assert stats.model_mix == {"a\x1fb": 2, "unknown": 2, "a": 1, "b": 1, 'q"uo\\te': 1,
                               "é,ü": 1}
    _assert_matches(staging, _reference([r for r in rows if r.env == "staging"],
                                        NOW - HOUR, NOW), 60.0)
    _assert_matches(where, _reference([r for r in rows if r.model is not None],
                                      NOW - HOUR, NOW), 60.0)
