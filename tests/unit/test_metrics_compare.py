"""Delta math, verdicts and number formats for baseline vs now; nearest-rank reference."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from llm_incident.metrics.compare import COMPARED, Comparison, delta, deltas, fmt, summary, verdict
from llm_incident.metrics.percentiles import nearest_rank, pick, reference_percentile
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import Baseline, Window

T0 = datetime(2026, 11, 26, 13, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 26, 14, tzinfo=timezone.utc)


def test_delta_math():
    d = delta("p95_tokens_out", 2431, 300)
    assert (d.abs, d.rel) == (2131, pytest.approx(2131 / 300))
    assert d.verdict == "p95 tokens_out 8.1× baseline (2,431 vs 300)"
    assert d.to_dict() == {"now": 2431, "baseline": 300, "abs": 2131, "rel": d.rel,
                           "verdict": d.verdict}


def test_zero_and_missing_baselines_never_divide():
    assert delta("calls", 5, 0).rel is None
    assert delta("calls", 5, 0).abs == 5
    assert delta("p95_duration_ms", None, 100.0).abs is None
    assert delta("p95_duration_ms", 100.0, None).rel is None


@pytest.mark.parametrize("stat, now, base, calls, text", [
    ("p95_duration_ms", 1500.0, 1000.0, (1, 1), "p95 duration 1.5× baseline (1,500 ms vs 1,000 ms)"),
    ("p95_duration_ms", 1040.0, 1000.0, (1, 1),
     "p95 duration about the same as baseline (1,040 ms vs 1,000 ms)"),
    ("p95_duration_ms", 1250.0, 1000.0, (1, 1), "p95 duration up 25% vs baseline (1,250 ms vs 1,000 ms)"),
    ("avg_tokens_in", 600.0, 1000.0, (1, 1), "avg tokens_in down 40% vs baseline (600.0 vs 1,000.0)"),
    ("flagged_rate", 0.042, 0.005, (1, 1), "flagged rate up 3.7 pts (4.2% vs 0.5%, 8.4× baseline)"),
    ("error_rate", 0.01, 0.02, (1, 1), "error rate down 1.0 pts (1.0% vs 2.0%)"),
    ("error_rate", 0.02, 0.0, (1, 1), "error rate +2.0 pts from 0 (2.0% vs 0.0%)"),
    ("cost_per_call_usd", 0.002, 0.002, (1, 1), "cost per call unchanged at $0.0020"),
    ("total_cost_usd", 12.5, 0.0, (1, 1), "total cost $12.50, up from 0 in the baseline"),
    ("calls", 0, 0, (0, 0), "calls: no traffic in the window or the baseline"),
    ("calls", 0, 12, (0, 12), "calls: no traffic in the window (baseline 12)"),
    ("p95_duration_ms", 900.0, None, (3, 0),
     "p95 duration 900 ms: no traffic in the baseline to compare with"),
    ("p95_duration_ms", None, None, (3, 4), "p95 duration: no data in either window"),
    ("p95_duration_ms", None, 800.0, (3, 4),
     "p95 duration: no data in the window (n/a vs 800 ms)"),
])
def test_verdicts(stat, now, base, calls, text):
    assert verdict(stat, now, base, *calls) == text


def test_formats():
    assert fmt(None, "rate") == "n/a"
    assert fmt(0.1234, "rate") == "12.3%"
    assert fmt(1234.4, "ms") == "1,234 ms"
    assert fmt(1234.5, "usd") == "$1,234.50" and fmt(0.00042, "usd") == "$0.0004"
    assert fmt(2431, "count") == "2,431" and fmt(3.25, "number") == "3.2"


def _stats(**values) -> WindowStats:
    return WindowStats(route="r", start=T0, end=T1, **values)


def test_deltas_cover_every_stat_and_summary_orders_by_size():
    now = _stats(calls=100, p95_tokens_out=2400, p95_duration_ms=1100.0, flagged_rate=0.05)
    base = _stats(calls=100, p95_tokens_out=300, p95_duration_ms=1000.0, flagged_rate=0.01)
    all_deltas = deltas(now, base)
    assert set(all_deltas) == set(COMPARED)
    comparison = Comparison("r", Window(T0, T1), Baseline("previous", Window(T0, T1)), now, base,
                            all_deltas)
    assert summary(comparison) == [all_deltas["p95_tokens_out"].verdict,
                                   all_deltas["flagged_rate"].verdict]
    body = comparison.to_dict()
    assert body["window"]["minutes"] == 60.0 and body["baseline"]["kind"] == "previous"
    assert body["now"]["start"] == T0.isoformat() and "p95_tokens_out" in body["deltas"]


def test_nearest_rank_definition():
    assert [nearest_rank(p, 10) for p in (0, 5, 10, 50, 51, 95, 99, 100)] == [
        1, 1, 1, 5, 6, 10, 10, 10]
    assert nearest_rank(7, 100) == 8  # 0.07 * 100 is 7.000000000000001 in doubles, as in PostgreSQL
    assert nearest_rank(95, 20) == 19
    with pytest.raises(ValueError):
        nearest_rank(101, 5)
    with pytest.raises(ValueError):
        nearest_rank(50, 0)
    assert reference_percentile([None, 3, 1, 2], 50) == 2
    assert reference_percentile([None], 50) is None
    assert pick([1, 2, 3], [0, 100]) == {0: 1, 100: 3}
    assert pick([], [50]) == {50: None}
