"""The two gates that keep a normal week quiet, on constructed data: a rate's critical needs a
binomial p < 1e-6 against the baseline (1e-6..1e-4: a warning, held twice), and a cost rise
carried by traffic alone is judged against the traffic before a silence, not across it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from llm_incident.alerts.confirm import Confirmed, _as_cost, active_minutes
from llm_incident.alerts.evaluate import CRITICAL, OK, WARNING, _shift_level
from llm_incident.alerts.rules import DEFAULT_RULES, AlertRule
from llm_incident.triage.series import MinuteSeries
from llm_incident.triage.shifts import Shift

START = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
FLAGGED = AlertRule(id="flagged", metric="flagged_rate", warning=1.5, critical=3, floor=0.02)
COST = next(r for r in DEFAULT_RULES if r.id == "cost-per-hour")


def shift(after: float, n_after: int, before: float = 0.025) -> Confirmed:
    return Confirmed(START, before, after, 500, n_after, "step")


@pytest.mark.parametrize("flagged, level", [(5, OK), (6, WARNING), (7, WARNING), (8, CRITICAL)])
def test_a_rate_is_critical_at_once_only_beyond_one_in_a_million(flagged, level):
    # 26 calls after the onset against a 2.5 % baseline: every one of these is > 3× by ratio;
    # p = 4.1e-4, 3.7e-5, 2.6e-6, 1.6e-7
    assert _shift_level(FLAGGED, shift(flagged / 26, 26), 0.025) == level


def test_the_short_windows_value_meets_the_same_test():
    assert _shift_level(FLAGGED, shift(0.01, 500), 0.025, after=6 / 26, calls=26) == WARNING
    assert _shift_level(FLAGGED, shift(0.01, 500), 0.025, after=12 / 60, calls=60) == CRITICAL


def test_absolute_and_non_rate_rules_are_not_held_back():
    tokens = AlertRule(id="tokens", metric="p95_tokens_out", warning=1.5, critical=3)
    assert _shift_level(tokens, shift(2400, 26, before=300), 300) == CRITICAL
    errors = AlertRule(id="errors", metric="error_rate", compare="absolute", warning=0.05,
                       critical=0.2)
    assert _shift_level(errors, shift(0.5, 60, before=0.0), None) == CRITICAL


def test_silences_are_left_out_of_the_minutes_before():
    counts = np.array([1] + [0] * 12 + [2] + [0] * 3 + [1] + [0] * 10)
    assert active_minutes(counts) == counts.size - 12 - 10
    assert active_minutes(np.array([0] * 9 + [3])) == 10        # 9 empty minutes: no silence
    assert active_minutes(np.zeros(0, dtype=int)) == 0


def series_of(counts: list[int], cost: float = 0.01) -> MinuteSeries:
    """A route's minute series with `counts[m]` calls in minute m, each priced at `cost`."""
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    minute_of = np.repeat(np.arange(len(counts)), counts)
    n = int(bounds[-1])
    columns = {name: np.zeros(n) for name in ("flagged", "error", "retry", "duration_ms",
                                               "tokens_in", "tokens_out")}
    columns["cost_usd"] = np.full(n, cost)
    return MinuteSeries(route="r", start=START, end=START + len(counts) * MIN,
                        minutes=[START + m * MIN for m in range(len(counts))],
                        minute_of=minute_of, bounds=bounds, columns=columns,
                        error_keys=np.full(n, None, dtype=object))


def calls_step(series: MinuteSeries, onset_minute: int) -> Shift:
    return Shift("calls_per_min", "step", series.minutes[onset_minute], 1.0, 6.0, 6.0, 0.99,
                 100, 100, "step at onset")


@pytest.mark.parametrize("back_at, fires", [(6, False), (10, True)])
def test_a_route_that_comes_back_is_judged_against_its_traffic_before_the_silence(back_at, fires):
    # 60 minutes at 2 calls/min, 30 silent, then `back_at` calls/min for 30: across the silence
    # the before is 1.33 calls/min (6/min would be ×4.5, past the 4× gate); without it, 2/min
    series = series_of([2] * 60 + [0] * 30 + [back_at] * 30)
    reasons = ["calls_per_min: step"]
    found = _as_cost(series, COST, "calls_per_min", calls_step(series, 90), reasons)
    if not fires:
        assert found is None and reasons[-1].endswith("×3.0 at the same cost per call")
        return
    assert found is not None
    assert found.before == pytest.approx(2 * 0.01 * 60)         # $/h before the silence
    assert found.after == pytest.approx(back_at * 0.01 * 60)


def test_a_short_gap_still_counts_as_traffic():
    series = series_of([2] * 60 + [0] * 9 + [8] * 30)            # 9 empty minutes: no silence
    found = _as_cost(series, COST, "calls_per_min", calls_step(series, 69), ["calls_per_min"])
    assert found is not None and found.before == pytest.approx(120 * 0.01 * 60 / 69)


def test_the_rate_must_beat_the_higher_of_baseline_and_before():
    # 11 flagged of 208 after the onset: p 7e-6 against a quiet day-ago window at 0.96 %, but
    # the route's own last two hours ran at 2.5 % (p 0.016): chance; 20 of 208 is not (4e-7)
    assert _shift_level(FLAGGED, shift(20 / 208, 208, before=0.025), 0.0096) == CRITICAL
    assert _shift_level(FLAGGED, shift(11 / 208, 208, before=0.025), 0.0096) == OK
    assert _shift_level(FLAGGED, shift(11 / 208, 208, before=0.0096), 0.025) == OK


def test_the_routes_trailing_rate_is_a_reference_too():
    # 39 flagged of 754 (5.2 %): p 1.2e-5 against a day-ago 2.4 % and a detector before of
    # 2.4 % (both low by chance), 9e-4 against the route's trailing 3 h at 3 %
    assert _shift_level(FLAGGED, shift(39 / 754, 754, before=0.0242), 0.0242) == WARNING
    assert _shift_level(FLAGGED, shift(39 / 754, 754, before=0.0242), 0.0242,
                        reference=0.03) == OK
