"""Attribution: which dimension values of a route explain the excess of the stat that moved.

Method (deterministic): one grouped query over the route's events from `COUNTS_BASELINE` (1 h)
before the onset (`counts_start`) to `COUNTS_AFTER` (1 h) after it or now; percentile thresholds
read the whole lookback.

- Every stat is a ratio of two per-event sums, `num / den` (a `Measure`): a rate counts the calls
  with the condition over the calls; a mean sums the column over the calls reporting it; a
  percentile stat (`p95_*`) becomes a tail share — the calls above the pre-onset p99 of the column
  (nearest rank, as `metrics.percentiles`) over the calls reporting it (when the stat fell: above
  the pre-onset p95); `calls_per_min` counts calls against the baseline's calls per minute.
- The expected value after the onset is the baseline rate of the whole route: `expected_v =
  r0 × den_after_v`, so `excess_v = num_after_v − expected_v` ("observed − expected"), and the
  excesses of a dimension's values add up to the route's excess `E`. `excess_share = excess_v / E`.
- A value explains the shift when the excess sits in it more than its traffic did before the onset:
  `score = excess_share − baseline_share` (the value's share of the baseline's `den`). A value
  that is all the traffic before and after (env prod, the only model) scores 0 however much
  excess it holds; a value that appeared at the onset (baseline share 0) scores its whole share.
  This is the weighted relative accuracy of subgroup discovery, normalised by the excess.
- Ranked by score, then by the dimension order of `DIMENSIONS` (model before provider when one
  model is all of a provider's calls), then value. Values not seen in the hour before the onset
  are flagged `appeared` with the time they were first seen.

The scoring itself (`Measure`, `Cells`, `rank`, `Attribution`) is `triage.ranking`; this module
reads the sums it scores. With a `CallFrame` of the window (`triage.frame`, read once by
`triage.report`) the sums are cut from it in numpy instead of queried, and the tail threshold of tokens is read off the detector's
`MinuteSeries` when it holds exactly the baseline window; the results are the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Float, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import nearest_rank, percentiles
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, event_conditions
from llm_incident.triage.frame import DIMENSIONS as FRAME_DIMENSIONS
from llm_incident.triage.frame import ERROR, FLAGGED, PRICED, RETRY, CallFrame
from llm_incident.triage.times import micros, moment
from llm_incident.triage.ranking import DIMENSIONS, UNKNOWN, Attribution, Cells, Measure, rank
from llm_incident.triage.series import ERROR_CODE_PREFIX, MinuteSeries, floor_minute

# The baseline reaches at least this far before the onset, even when the lookback is shorter.
MIN_BASELINE = timedelta(minutes=30)
# The values' counts read at most this far either side of the onset (the dimension columns are
# read row by row); the tail threshold reads the whole lookback.
COUNTS_BASELINE = COUNTS_AFTER = timedelta(hours=1)



def _one(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return case((condition, 1), else_=0)


PERCENTILE_COLUMNS = {"p95_tokens_out": "tokens_out", "p95_duration_ms": "duration_ms",
                       "p95_tokens_in": "tokens_in", "p99_duration_ms": "duration_ms",
                       "p50_duration_ms": "duration_ms"}


# Integer columns: the series holds them exactly (durations it rounds to whole nanoseconds).
SERIES_STATS = {"tokens_out": "p95_tokens_out", "tokens_in": "avg_tokens_in"}


def _series_percentile(series: MinuteSeries | None, column: str, p: float,
                       start: datetime, end: datetime) -> tuple[bool, float | None]:
    """(True, the p-th percentile of `column` over `[start, end)`) when `series` holds exactly
    those calls — whole minutes inside it, an integer column; else (False, None)."""
    stat = SERIES_STATS.get(column)
    if (series is None or stat is None or start != series.start or end > series.end
            or floor_minute(end) != end or end < start):
        return False, None
    samples = series.sample_array(stat, 0, series.index(end))
    if samples.size == 0:
        return True, None
    k = nearest_rank(p, samples.size) - 1
    return True, float(np.partition(samples, k)[k])


def measure_for(session: Session, route: str, stat: str, *, baseline_start: datetime,
                onset: datetime, rising: bool = True,
                series: MinuteSeries | None = None) -> Measure:
    """The Measure of `stat`; a percentile stat reads its threshold from the baseline window
    (off `series` when it holds exactly that window)."""
    if stat in PERCENTILE_COLUMNS:
        column = C[PERCENTILE_COLUMNS[stat]]
        p = 99.0 if rising else float(stat[1:3])
        known, found = _series_percentile(series, PERCENTILE_COLUMNS[stat], p,
                                          aware_utc(baseline_start), aware_utc(onset))
        if not known:
            found = percentiles(session, column, (p,),
                                event_conditions(route, baseline_start, onset))[p]
        threshold = float(found) if found is not None else None
        above = column > threshold if threshold is not None else literal(False)
        return Measure(stat, "tail", _one(above), _one(column.is_not(None)), threshold, p)
    if stat == "avg_tokens_in":
        return Measure(stat, "mean", func.coalesce(C.tokens_in, 0), _one(C.tokens_in.is_not(None)))
    if stat == "cost_per_call_usd":
        return Measure(stat, "mean", case((C.priced, func.coalesce(C.cost_usd, 0.0)), else_=0.0),
                       _one(C.priced))
    if stat == "calls_per_min":
        return Measure(stat, "volume", literal(1), literal(1))
    conditions = {"flagged_rate": IS_FLAGGED, "error_rate": IS_ERROR, "retry_share": C.attempt > 1}
    if stat in conditions:
        return Measure(stat, "rate", _one(conditions[stat]), literal(1))
    if stat.startswith(ERROR_CODE_PREFIX):
        code = stat.removeprefix(ERROR_CODE_PREFIX)
        is_code = IS_ERROR & (func.coalesce(C.error_code, UNKNOWN) == code)
        return Measure(stat, "rate", _one(is_code), literal(1))
    raise ValueError(f"no attribution for stat {stat!r}")



def baseline_start(onset: datetime, now: datetime, lookback: timedelta) -> datetime:
    """Where the pre-onset percentiles are read from (the tail threshold, the clamp's p99): the
    lookback before `now`, and at least `MIN_BASELINE` before the onset."""
    return min(now - lookback, onset - MIN_BASELINE)


def counts_start(onset: datetime, now: datetime, lookback: timedelta) -> datetime:
    """Where the values' baseline counts start: `COUNTS_BASELINE` before the onset at most (the
    dimension columns are read row by row, so the window stays short), `MIN_BASELINE` at least."""
    return max(baseline_start(onset, now, lookback), onset - COUNTS_BASELINE)


def collect(session: Session, route: str, measure: Measure, *, start: datetime,
            onset: datetime, now: datetime) -> Cells:
    """The grouped sums of `measure` per combination of dimension values, before/after `onset`."""
    after = case((C.ts >= onset, 1), else_=0)
    inner = select(*(C[d] for d in DIMENSIONS if d != "prompt_version"), C.prompt_version,
                   after.label("after"), cast(measure.num, Float).label("num"),
                   cast(measure.den, Float).label("den"), C.ts
                   ).where(*event_conditions(route, start, now)).subquery()
    keys = [inner.c[d] for d in DIMENSIONS]
    stmt = (select(*keys, inner.c.after, func.count(), func.sum(inner.c.num),
                   func.sum(inner.c.den), func.min(inner.c.ts))
            .group_by(*keys, inner.c.after))
    cells = Cells(minutes=((onset - start).total_seconds() / 60,
                           (now - onset).total_seconds() / 60))
    for row in session.execute(stmt):
        dims = dict(zip(DIMENSIONS, row[: len(DIMENSIONS)], strict=True))
        after_flag, calls, num, den, first = row[len(DIMENSIONS):]
        cells.add_row(dims, bool(after_flag), calls, float(num or 0), float(den or 0),
                      aware_utc(first))
    return cells


def frame_sums(frame: CallFrame, measure: Measure) -> tuple[np.ndarray, np.ndarray]:
    """Per call of `frame`, the `num` and `den` of `measure` (what `measure_for` sums in SQL)."""
    ones = np.ones(len(frame))
    if measure.kind == "tail":
        values = frame.values[PERCENTILE_COLUMNS[measure.stat]]
        reported = ~np.isnan(values)
        above = (values > measure.threshold if measure.threshold is not None
                 else np.zeros(len(frame), dtype=bool))
        return (above & reported).astype(float), reported.astype(float)
    if measure.stat == "avg_tokens_in":
        values = frame.values["tokens_in"]
        return np.nan_to_num(values), (~np.isnan(values)).astype(float)
    if measure.stat == "cost_per_call_usd":
        priced = frame.flag(PRICED)
        return np.where(priced, np.nan_to_num(frame.values["cost_usd"]), 0.0), priced.astype(float)
    if measure.kind == "volume":
        return ones, ones
    bits = {"flagged_rate": FLAGGED, "error_rate": ERROR, "retry_share": RETRY}
    if measure.stat in bits:
        return frame.flag(bits[measure.stat]).astype(float), ones
    code = measure.stat.removeprefix(ERROR_CODE_PREFIX)
    return (frame.error_keys == code).astype(float), ones


def collect_frame(frame: CallFrame, measure: Measure, *, start: datetime, onset: datetime,
                  now: datetime) -> Cells:
    """`collect` cut from `frame` (which covers `[start, now)`) instead of queried."""
    window = frame.between(start, now)
    num, den = (column[window] for column in frame_sums(frame, measure))
    after = (frame.us[window] >= micros(onset)).astype(np.int64)
    key = frame.combo[window] * 2 + after
    size = 2 * len(frame.combos)
    calls = np.bincount(key, minlength=size)
    nums = np.bincount(key, weights=num, minlength=size)
    dens = np.bincount(key, weights=den, minlength=size)
    keys, first = np.unique(key, return_index=True)  # the frame is sorted by time
    first_us = frame.us[window][first]
    cells = Cells(minutes=((onset - start).total_seconds() / 60,
                           (now - onset).total_seconds() / 60))
    for k, us in zip(keys.tolist(), first_us.tolist(), strict=True):
        dims = dict(zip(FRAME_DIMENSIONS, frame.combos[k // 2], strict=True))
        cells.add_row(dims, bool(k % 2), int(calls[k]), float(nums[k]), float(dens[k]),
                      moment(us))
    return cells


def aware_utc(ts: Any) -> datetime:
    """A stored time-stamp (naive UTC, or text from SQLite's `min(ts)`) or a caller's datetime
    as an aware UTC datetime, so stored and given times compare."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


def counts_window(onset: datetime, now: datetime, lookback: timedelta
                  ) -> tuple[datetime, datetime]:
    """The window the values' counts read: `[counts_start, min(now, onset + COUNTS_AFTER))`."""
    return counts_start(onset, now, lookback), min(now, onset + COUNTS_AFTER)


def attribute(session: Session, route: str, *, stat: str, onset: datetime, now: datetime,
              lookback: timedelta = timedelta(hours=6), rising: bool = True,
              limit: int = 10, frame: CallFrame | None = None,
              series: MinuteSeries | None = None) -> list[Attribution]:
    """The values of `route` that best explain the move of `stat` at `onset`, best first.

    `rising`: the stat went up (a percentile stat then counts calls above the pre-onset p99,
    else above the pre-onset p95). Only values with calls after the onset, at most `limit`.
    `frame` (covering `counts_window`) and `series` (the detector's): read instead of querying
    (see the module docstring)."""
    measure = measure_for(session, route, stat, onset=onset, rising=rising,
                          baseline_start=baseline_start(onset, now, lookback), series=series)
    start, end = counts_window(onset, now, lookback)
    if frame is not None and frame.covers(start, end):
        cells = collect_frame(frame, measure, start=start, onset=onset, now=end)
    else:
        cells = collect(session, route, measure, start=start, onset=onset, now=end)
    return rank(cells, measure)[:limit]
