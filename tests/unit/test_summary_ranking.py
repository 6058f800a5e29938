"""Summary ranking on one scale: rates by points, others by relative move, zero baselines ranked."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from llm_incident.metrics.compare import (
    Comparison,
    delta,
    deltas,
    error_code_deltas,
    moved,
    summary,
    verdict,
    weight,
)
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import Baseline, Window

T0 = datetime(2026, 11, 26, 13, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 26, 14, tzinfo=timezone.utc)


def _stats(**values) -> WindowStats:
    return WindowStats(route="r", start=T0, end=T1, **values)


def _comparison(now: WindowStats, base: WindowStats) -> Comparison:
    return Comparison("r", Window(T0, T1), Baseline("previous", Window(T0, T1)), now, base,
                      deltas(now, base))


def test_provider_incident_headline_is_the_error_rate_from_zero_not_the_token_dip():
    now = _stats(calls=180, errors=40, error_rate=40 / 180, error_codes={"429": 40},
                 avg_tokens_out=333.0, retries=20, retry_share=20 / 180)
    base = _stats(calls=180, errors=0, error_rate=0.0, avg_tokens_out=450.0, retries=0,
                  retry_share=0.0)
    assert summary(_comparison(now, base)) == [
        "error rate +22.2 pts from 0 (22.2% vs 0.0%)",
        "errors 429 +22.2 pts from 0 (22.2% vs 0.0%)",
        "retry share +11.1 pts from 0 (11.1% vs 0.0%)",
        "avg tokens_out down 26% vs baseline (333.0 vs 450.0)",
    ]


def test_a_rate_up_several_points_from_zero_outranks_a_26_percent_move():
    now = _stats(calls=100, error_rate=0.03, avg_tokens_out=333.0)
    base = _stats(calls=100, error_rate=0.0, avg_tokens_out=450.0)
    lines = summary(_comparison(now, base))
    assert lines == ["error rate +3.0 pts from 0 (3.0% vs 0.0%)",
                     "avg tokens_out down 26% vs baseline (333.0 vs 450.0)"]


def test_a_tiny_rate_move_is_left_out_however_large_relative_to_its_baseline():
    now = _stats(calls=100, flagged_rate=0.004, error_rate=0.003, p95_duration_ms=1300.0)
    base = _stats(calls=100, flagged_rate=0.001, error_rate=0.0, p95_duration_ms=1000.0)
    assert summary(_comparison(now, base)) == [
        "p95 duration up 30% vs baseline (1,300 ms vs 1,000 ms)"]


def test_a_new_error_code_is_a_headline_and_a_vanished_one_is_ranked_too():
    now = _stats(calls=200, errors=30, error_rate=0.15, error_codes={"500": 30},
                 avg_tokens_in=1300.0)
    base = _stats(calls=200, errors=30, error_rate=0.15, error_codes={"timeout": 30},
                  avg_tokens_in=1000.0)
    assert summary(_comparison(now, base)) == [
        "errors 500 +15.0 pts from 0 (15.0% vs 0.0%)",
        "errors timeout down 15.0 pts (0.0% vs 15.0%)",
        "avg tokens_in up 30% vs baseline (1,300.0 vs 1,000.0)",
    ]


def test_a_stat_from_zero_weighs_as_a_doubling_between_a_small_and_a_large_move():
    now = _stats(calls=100, total_cost_usd=12.5, p95_tokens_out=2400, avg_tokens_in=1300.0)
    base = _stats(calls=100, total_cost_usd=0.0, p95_tokens_out=300, avg_tokens_in=1000.0)
    assert summary(_comparison(now, base)) == [
        "p95 tokens_out 8.0× baseline (2,400 vs 300)",
        "total cost $12.50, up from 0 in the baseline",
        "avg tokens_in up 30% vs baseline (1,300.0 vs 1,000.0)",
    ]


@pytest.mark.parametrize("stat, now, base, expected", [
    ("error_rate", 0.222, 0.0, 4.44),       # 22.2 pts / 5 pts per doubling
    ("flagged_rate", 0.05, 0.01, 0.8),      # points count, not the 5× ratio
    ("error_code:429", 0.03, 0.0, 0.6),
    ("avg_tokens_out", 333.0, 450.0, 0.26),
    ("p95_tokens_out", 2400, 300, 7.0),
    ("total_cost_usd", 12.5, 0.0, 1.0),     # from zero: as a doubling
    ("p95_duration_ms", 900.0, None, 0.0),  # nothing to compare
    ("calls", 10, 10, 0.0),
])
def test_weights(stat, now, base, expected):
    assert weight(delta(stat, now, base)) == pytest.approx(expected)


def test_moved_threshold_is_half_a_point_for_rates_and_ten_percent_otherwise():
    assert moved(delta("error_rate", 0.0051, 0.0)) and not moved(delta("error_rate", 0.0049, 0.0))
    assert moved(delta("calls", 111, 100)) and not moved(delta("calls", 109, 100))


def test_ties_keep_compared_order_so_the_error_rate_leads_its_only_code():
    now = _stats(calls=10, errors=5, error_rate=0.5, error_codes={"429": 5})
    base = _stats(calls=10, error_rate=0.0)
    assert summary(_comparison(now, base), limit=2) == [
        "error rate +50.0 pts from 0 (50.0% vs 0.0%)",
        "errors 429 +50.0 pts from 0 (50.0% vs 0.0%)"]


def test_error_code_deltas_take_the_biggest_codes_of_either_window():
    now = _stats(calls=100, error_codes={"429": 20, "500": 5, "503": 1})
    base = _stats(calls=50, error_codes={"timeout": 10, "500": 1})
    codes = error_code_deltas(now, base)
    assert list(codes) == ["429", "timeout", "500"]
    assert (codes["429"].now, codes["429"].baseline) == (0.2, 0.0)
    assert (codes["timeout"].now, codes["timeout"].baseline) == (0.0, 0.2)
    assert codes["500"].stat == "error_code:500" and codes["500"].abs == pytest.approx(0.03)
    assert list(error_code_deltas(now, base, limit=1)) == ["429"]


def test_error_code_verdicts_without_baseline_traffic_say_so():
    now = _stats(calls=4, error_codes={"429": 1})
    codes = error_code_deltas(now, _stats())
    assert codes["429"].verdict == "errors 429 25.0%: no traffic in the baseline to compare with"
    assert verdict("error_code:429", 0.25, 0.0) == "errors 429 +25.0 pts from 0 (25.0% vs 0.0%)"


def test_no_baseline_traffic_keeps_the_traffic_line_only():
    now = _stats(calls=10, error_rate=0.5, error_codes={"429": 5})
    assert summary(_comparison(now, _stats())) == [
        "calls 10: no traffic in the baseline to compare with"]
