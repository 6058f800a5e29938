"""One query API, two paths, on both backends: long windows and baselines from rollups agree with
the exact path on the same data (counts exact, percentiles within 1 %) and say they are
approximate; short windows, filters the rollups lack, and rollups not caught up stay exact."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from llm_incident.metrics.compare import SKETCHED, compare_windows
from llm_incident.metrics.filters import compile_filter
from llm_incident.metrics.rollup_stats import set_exact_window_max
from llm_incident.metrics.scope import Scope
from llm_incident.metrics.stats import stats_for
from llm_incident.rollups.build import MAX_GROUPS, roll_up
from llm_incident.rollups.sketch import RELATIVE_ACCURACY
from tests.integration.test_metrics_stats import NOW, _random_events, _store
from tests.support import recorded_statements

DAY = timedelta(hours=24)
EXACT_FIELDS = ("calls", "flagged", "errors", "retries", "priced_calls", "unpriced_calls",
                "error_codes", "model_mix", "flagged_rate", "error_rate", "retry_share",
                "calls_per_min")
PERCENTILES = ("p50_duration_ms", "p95_duration_ms", "p99_duration_ms", "p95_tokens_in",
               "p95_tokens_out")


@pytest.fixture(autouse=True)
def _default_threshold():
    set_exact_window_max(None)
    yield
    set_exact_window_max(None)


def _seed(db, seed: int, n: int = 1500) -> None:
    rnd = random.Random(seed)
    events = _random_events(rnd, "support.reply", n, NOW - DAY, DAY)
    events += _random_events(rnd, "search.answer", n // 3, NOW - DAY, DAY)
    _store(db, [e for e in events if e["ts"] < NOW])
    roll_up(db, NOW + timedelta(minutes=2))


def _assert_agree(exact, approx) -> None:
    assert not exact.approximate and exact.precision is None
    assert approx.approximate and approx.precision == "≈, ±1 %"
    for name in EXACT_FIELDS:
        assert getattr(approx, name) == getattr(exact, name), name
    for name in ("total_cost_usd", "cost_per_call_usd", "avg_tokens_in", "avg_tokens_out"):
        assert getattr(approx, name) == pytest.approx(getattr(exact, name), rel=1e-9), name
    for name in PERCENTILES:
        want, got = getattr(exact, name), getattr(approx, name)
        if want is None:
            assert got is None, name
            continue
        rounding = 0.5 if name.endswith(("tokens_in", "tokens_out")) else 0.0  # whole tokens
        assert abs(got - want) <= RELATIVE_ACCURACY * want + rounding, (name, got, want)


@pytest.mark.parametrize("seed", [3, 4])
def test_long_windows_from_rollups_agree_with_the_exact_path(db, seed):
    _seed(db, seed)
    # A window not on minute boundaries whose end is past the rollups' complete_until: both
    # edges come from raw events.
    end = NOW + timedelta(minutes=1, seconds=13.7)
    start = end - DAY + timedelta(seconds=41.2)
    scopes = [Scope(), Scope(env="prod"), Scope(env="staging", model="gpt-4o")]
    with db.read() as session:
        for route in ("support.reply", None):
            for scope in scopes:
                exact = stats_for(session, route, start, end, scope=scope, path="exact")
                approx = stats_for(session, route, start, end, scope=scope)
                assert exact.calls > 0
                _assert_agree(exact, approx)


def test_short_windows_stay_exact_and_the_threshold_is_configurable(db):
    _seed(db, 5)
    start, end = NOW - timedelta(hours=2), NOW
    with db.read() as session:
        assert not stats_for(session, "support.reply", start, end).approximate
        set_exact_window_max(timedelta(hours=1))
        exact = stats_for(session, "support.reply", start, end, path="exact")
        _assert_agree(exact, stats_for(session, "support.reply", start, end))


def test_what_rollups_cannot_answer_is_exact(db):
    _seed(db, 6)
    start = NOW - DAY
    with db.read() as session:
        where = compile_filter('prompt_id = "p1"', now=NOW)
        assert not stats_for(session, "support.reply", start, NOW, where=where).approximate
        assert not stats_for(session, "support.reply", start, NOW,
                             scope=Scope(region="eu-west-1")).approximate
        assert stats_for(session, "support.reply", start, NOW, scope=Scope(env="prod")).approximate


def test_before_the_job_has_caught_up_everything_is_exact(db):
    rnd = random.Random(7)
    _store(db, _random_events(rnd, "support.reply", 200, NOW - DAY, DAY))
    with db.read() as session:
        assert not stats_for(session, "support.reply", NOW - DAY, NOW).approximate


def test_a_model_filter_on_a_minute_with_folded_models_is_exact(db):
    _store(db, [{"route": "r", "ts": NOW - timedelta(hours=10), "model": f"m{i:03d}",
                 "duration_ms": 5.0 + i} for i in range(MAX_GROUPS + 5)]
           + [{"route": "r", "ts": NOW - timedelta(hours=40), "model": "m000"}])
    roll_up(db, NOW + timedelta(minutes=2))
    with db.read() as session:
        folded = stats_for(session, "r", NOW - DAY, NOW, scope=Scope(model="m054"))
        kept = stats_for(session, "r", NOW - 2 * DAY, NOW - DAY, scope=Scope(model="m000"))
    assert not folded.approximate and folded.calls == 1
    assert kept.approximate and kept.calls == 1


def test_baselines_come_from_rollups_and_their_verdicts_say_so(db):
    _seed(db, 8)
    with db.read() as session:
        comparison = compare_windows(session, "support.reply", now=NOW,
                                     window=timedelta(minutes=30), baseline="previous")
    assert not comparison.now.approximate and comparison.baseline_stats.approximate
    for stat in SKETCHED:
        assert comparison.deltas[stat].verdict.endswith("(≈, ±1 %)"), stat
    assert "≈" not in comparison.deltas["calls"].verdict
    assert comparison.to_dict()["baseline_stats"]["precision"] == "≈, ±1 %"


def test_a_transaction_reads_the_rollup_state_once(db):
    """Every rollup-path window asks for the rollups' state; an alert run of 200 routes sent
    1,500 such statements (a fifth of its time) before the session held the row."""
    _seed(db, 5, n=300)
    with recorded_statements(db) as statements, db.read() as session:
        for hours in (7, 8, 9):
            assert stats_for(session, "support.reply", NOW - timedelta(hours=hours), NOW,
                             path="rollups").approximate
    assert sum("FROM rollup_state" in s for s, _params in statements) == 1
