"""Shift detection on constructed per-minute series (no database)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from llm_incident.metrics.percentiles import reference_percentile
from llm_incident.triage import shifts
from llm_incident.triage.series import MINUTE, series_from_rows
from llm_incident.triage.shifts import CLASS_STATS, STATS, RouteShifts, detect, detect_route

START = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
MINUTES = 360
END = START + MINUTES * MINUTE


def _series(rate: float, *, seed: int = 0, tokens_out=None, flagged=None, calls=None,
            minutes: int = MINUTES):
    """A series of `minutes` with Poisson(rate or calls(m)) calls a minute; tokens_out(m, n, rng)
    and flagged(m) (a probability) change behaviour by minute."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(minutes):
        n = rng.poisson(calls(m) if calls else rate)
        outs = tokens_out(m, n, rng) if tokens_out else rng.lognormal(np.log(250), 0.5, n)
        p_flag = flagged(m) if flagged else 0.01
        for i in range(n):
            ts = START.timestamp() + m * 60 + rng.uniform(0, 59)
            rows.append((int(ts), int(rng.uniform() < p_flag), 0, None, 0,
                         float(rng.exponential(300) + 200), float(rng.integers(500, 900)),
                         float(int(outs[i])), 0.001))
    return series_from_rows("r", START, START + minutes * MINUTE, rows)


def _step_tokens(onset: int, factor: float):
    def tokens(m, n, rng):
        return rng.lognormal(np.log(250), 0.5, n) * (factor if m >= onset else 1.0)
    return tokens


def test_step_is_found_at_its_minute_with_raw_before_and_after():
    series = _series(30, tokens_out=_step_tokens(330, 4.0))
    shift = detect(series, "p95_tokens_out")
    onset = START + 330 * MINUTE
    assert shift.kind == "step" and shift.onset == onset
    before = series.samples("p95_tokens_out", START, onset)
    after = series.samples("p95_tokens_out", onset, END)
    assert shift.before == reference_percentile(before, 95)
    assert shift.after == reference_percentile(after, 95)
    assert (shift.n_before, shift.n_after) == (len(before), len(after))
    assert shift.ratio == pytest.approx(shift.after / shift.before) and 3 < shift.ratio < 5
    assert shift.confidence > 0.999
    assert "step at 13:30" in shift.reason


def test_rate_step_at_five_calls_a_minute():
    series = _series(5, flagged=lambda m: 0.6 if m >= 320 else 0.01, seed=3)
    shift = detect(series, "flagged_rate")
    assert shift.kind == "step"
    assert abs((shift.onset - (START + 320 * MINUTE)) / MINUTE) <= 2
    assert shift.before < 0.03 and shift.after > 0.4


@pytest.mark.parametrize("rate", [5, 30, 200])
def test_steady_behaviour_is_no_shift(rate):
    series = _series(rate, seed=rate)
    for stat in STATS:
        shift = detect(series, stat)
        assert shift.kind == "none", shift
        assert shift.onset is None and shift.after is None


def test_traffic_surge_moves_only_calls_per_min():
    series = _series(0, calls=lambda m: 90 if m >= 330 else 30, seed=5)
    moved = {stat: detect(series, stat) for stat in STATS}
    assert moved["calls_per_min"].kind == "step"
    assert moved["calls_per_min"].onset == START + 330 * MINUTE
    assert moved["calls_per_min"].ratio == pytest.approx(3, rel=0.15)
    assert [s for s, shift in moved.items() if shift.moved] == ["calls_per_min"]


def test_significant_but_small_change_is_no_shift():
    series = _series(200, tokens_out=_step_tokens(300, 1.1), seed=2)
    shift = detect(series, "p95_tokens_out")
    assert shift.kind == "none"
    assert "change too small" in shift.reason


def test_too_few_calls():
    series = _series(0.05, seed=1)
    shift = detect(series, "p95_tokens_out")
    assert shift.kind == "none" and shift.reason.startswith("too few calls")
    quiet_after = _series(30, calls=lambda m: 30 if m < 350 else 0.5, tokens_out=_step_tokens(
        352, 5.0))
    assert detect(quiet_after, "p95_tokens_out").kind == "none"


def test_gradual_drift_is_drift_not_step():
    def ramp(m, n, rng):
        return rng.lognormal(np.log(250), 0.5, n) * (1 + 1.5 * max(0, m - 200) / 160)
    shift = detect(_series(30, tokens_out=ramp, seed=4), "p95_tokens_out")
    assert shift.kind == "drift"
    assert abs((shift.onset - (START + 200 * MINUTE)) / MINUTE) <= 30
    assert shift.reason.startswith("drift since")


def test_mann_whitney_p_is_scipys():
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.integers(0, 40, 300), rng.integers(5, 45, 80)]).astype(float)
    ranks, ties = shifts._ranks(values, rate=False)
    expected = mannwhitneyu(values[:300], values[300:], method="asymptotic").pvalue
    assert shifts._mann_whitney_p(ranks, 300, 80, ties) == pytest.approx(expected, rel=1e-9)


def test_route_onset_is_the_common_change_point_of_the_class():
    series = _series(30, tokens_out=_step_tokens(330, 4.0),
                     flagged=lambda m: 0.3 if m >= 200 else 0.01, seed=6)
    found = {stat: detect(series, stat) for stat in STATS}
    route = RouteShifts("r", START, END, found, series)
    assert route.onset(CLASS_STATS["cost"]) == START + 330 * MINUTE
    assert route.onset(CLASS_STATS["quality"]) == START + 200 * MINUTE
    assert route.onset() == START + 200 * MINUTE  # separate changes: the first began it
    assert route.onset(["calls_per_min"]) is None
    moved = route.moved()
    assert {s.stat for s in moved} == {"p95_tokens_out", "flagged_rate"}
    assert moved == sorted(moved, key=lambda s: -s.effect)
    data = json.loads(json.dumps(route.to_dict()))
    assert data["onset"] == (START + 200 * MINUTE).isoformat()
    assert data["shifts"]["p95_tokens_out"]["kind"] == "step"


def test_lookback_is_bounded():
    now = END
    for lookback in (timedelta(minutes=9), timedelta(hours=25)):
        with pytest.raises(ValueError):
            detect_route(None, "r", now=now, lookback=lookback)  # type: ignore[arg-type]


def test_a_call_rounded_up_to_the_window_end_stays_in_the_last_minute():
    """SQLite's unixepoch() rounds 13:59:59.9995 up to 14:00:00 (the end): the call still
    belongs to the window's last minute, and detection runs (it once raised on the shape)."""
    rows = [(int(START.timestamp()) + m * 60 + 30, 0, 0, None, 0, 300.0, 600.0, 250.0, 0.001)
            for m in range(MINUTES) for _ in range(5)]
    rows.append((int(END.timestamp()), 1, 0, None, 0, 300.0, 600.0, 250.0, 0.001))
    series = series_from_rows("r", START, END, rows)
    assert series.calls(START, END) == 5 * MINUTES + 1
    assert series.calls(END - MINUTE, END) == 6
    assert detect(series, "flagged_rate").kind == "none"
