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

With a `CallFrame` of the window (`triage.frame`, read once by `triage.report`) the sums are cut
from it in numpy instead of queried, and the tail threshold of tokens is read off the detector's
`MinuteSeries` when it holds exactly the baseline window; the results are the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import Float, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.compare import COMPARED, fmt
from llm_incident.metrics.percentiles import nearest_rank, percentiles
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, event_conditions
from llm_incident.triage.frame import DIMENSIONS as FRAME_DIMENSIONS
from llm_incident.triage.frame import ERROR, FLAGGED, PRICED, RETRY, CallFrame
from llm_incident.triage.times import micros, moment
from llm_incident.triage.series import MinuteSeries, floor_minute

# Dimensions examined, in tie-break order (prompt_version is keyed by its prompt_id).
DIMENSIONS = ("model", "provider", "prompt_version", "prompt_id", "region", "env",
              "customer_tier")
ERROR_CODE_PREFIX = "error_code_rate:"
# The baseline reaches at least this far before the onset, even when the lookback is shorter.
MIN_BASELINE = timedelta(minutes=30)
# The values' counts read at most this far either side of the onset (the dimension columns are
# read row by row); the tail threshold reads the whole lookback.
COUNTS_BASELINE = COUNTS_AFTER = timedelta(hours=1)
# A value "explains" the excess from this score on (see the module docstring).
EXPLAINS_SCORE = 0.2
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Measure:
    """A stat as `sum(num) / sum(den)` over events; `kind`: rate | tail | mean | volume."""

    stat: str
    kind: str
    num: ColumnElement[Any]
    den: ColumnElement[Any]
    threshold: float | None = None  # tail: the pre-onset percentile the calls are counted above
    threshold_p: float | None = None

    def describe(self) -> str:
        """What `num` counts, for the attribution's sentence."""
        if self.kind == "tail":
            column = self.stat.removeprefix("p95_")
            label = COMPARED.get(self.stat, (self.stat,))[0].removeprefix("p95 ")
            value = fmt(self.threshold, "ms" if column == "duration_ms" else "count")
            return f"calls above the old p{self.threshold_p:g} {label} ({value})"
        return {
            "flagged_rate": "flagged calls",
            "error_rate": "errors",
            "retry_share": "retried calls",
            "avg_tokens_in": "excess tokens_in",
            "cost_per_call_usd": "excess cost",
            "calls_per_min": "extra calls",
        }.get(self.stat, f"{self.stat.removeprefix(ERROR_CODE_PREFIX)} errors")


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


@dataclass
class Cell:
    """One dimension value's sums before (0) and after (1) the onset."""

    calls0: int = 0
    num0: float = 0.0
    den0: float = 0.0
    calls1: int = 0
    num1: float = 0.0
    den1: float = 0.0
    first_seen: datetime | None = None

    def add(self, after: bool, calls: int, num: float, den: float, first: datetime) -> None:
        if after:
            self.calls1 += calls
            self.num1 += num
            self.den1 += den
        else:
            self.calls0 += calls
            self.num0 += num
            self.den0 += den
        if self.first_seen is None or first < self.first_seen:
            self.first_seen = first


@dataclass
class Attribution:
    """How much of the excess one dimension value holds (see the module docstring)."""

    dimension: str
    value: str
    stat: str
    kind: str
    excess: float
    excess_share: float
    baseline_share: float
    share_after: float  # the value's share of calls after the onset
    rate_before: float | None  # the value's own num/den before and after
    rate_after: float | None
    calls_before: int
    calls_after: int
    score: float
    appeared: bool
    first_seen: datetime | None
    describes: str = ""  # what is counted, e.g. "calls above the old p99 tokens_out (652)"
    prompt_id: str | None = None
    threshold: float | None = None  # tail: the pre-onset percentile counted above
    threshold_p: float | None = None

    @property
    def explains(self) -> bool:
        return self.score >= EXPLAINS_SCORE

    @property
    def label(self) -> str:
        return f"{self.dimension} {self.value}"

    def text(self) -> str:
        """E.g. "prompt_version v42: 97 % of calls above the old p99 tokens_out (652); 95 % of
        its calls are; first seen 19:37"."""
        parts = [f"{self.label}: {_pct(self.excess_share)} of {self.describes}"]
        if self.kind == "tail" and self.rate_after is not None:
            parts.append(f"{_pct(self.rate_after)} of its calls are above it")
        elif self.kind == "rate":
            was = "" if self.appeared else f"{_pct(self.rate_before)} → "
            parts.append(f"its rate {was}{_pct(self.rate_after)}")
        parts.append(f"{_pct(self.share_after)} of calls after the onset"
                     + ("" if self.appeared else f" (was {_pct(self.baseline_share)})"))
        if self.appeared and self.first_seen is not None:
            parts.append(f"appeared at the onset, first seen {self.first_seen:%H:%M}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension, "value": self.value, "prompt_id": self.prompt_id,
            "stat": self.stat, "kind": self.kind, "excess": self.excess,
            "excess_share": self.excess_share, "baseline_share": self.baseline_share,
            "share_after": self.share_after, "rate_before": self.rate_before,
            "rate_after": self.rate_after, "calls_before": self.calls_before,
            "calls_after": self.calls_after, "score": self.score, "explains": self.explains,
            "appeared": self.appeared, "threshold": self.threshold,
            "threshold_p": self.threshold_p,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "text": self.text(),
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


@dataclass
class Cells:
    """Per (dimension, value key) cells and the route's totals; `minutes` = before, after."""

    by_value: dict[tuple[str, Any], Cell] = field(default_factory=dict)
    total: Cell = field(default_factory=Cell)
    minutes: tuple[float, float] = (0.0, 0.0)

    def add_row(self, dims: dict[str, Any], after: bool, calls: int, num: float, den: float,
                first: datetime) -> None:
        self.total.add(after, calls, num, den, first)
        for dim in DIMENSIONS:
            key = ((dims["prompt_id"], dims[dim]) if dim == "prompt_version" else dims[dim])
            self.by_value.setdefault((dim, key), Cell()).add(after, calls, num, den, first)


def _value_text(dim: str, key: Any) -> tuple[str, str | None]:
    if dim == "prompt_version":
        prompt_id, version = key
        return (UNKNOWN if version is None else str(version)), prompt_id
    return (UNKNOWN if key is None else str(key)), None


def rank(cells: Cells, measure: Measure) -> list[Attribution]:
    """Every value with calls after the onset, best explanation first (pure; see the docstring)."""
    total = cells.total
    minutes0, minutes1 = cells.minutes
    if measure.kind == "volume":
        if not minutes0 or not total.calls0:
            return []
        scale = minutes1 / minutes0
        excess_total = total.calls1 - total.calls0 * scale
    else:
        if not total.den0:
            return []
        base_rate = total.num0 / total.den0
        excess_total = total.num1 - base_rate * total.den1
    if abs(excess_total) < 1e-9:
        return []
    out = []
    for (dim, key), cell in cells.by_value.items():
        if not cell.calls1:
            continue
        if measure.kind == "volume":
            excess = cell.calls1 - cell.calls0 * scale
            base_share = cell.calls0 / total.calls0
        else:
            excess = cell.num1 - base_rate * cell.den1
            base_share = cell.den0 / total.den0
        share = excess / excess_total
        value, prompt_id = _value_text(dim, key)
        out.append(Attribution(
            dimension=dim, value=value, prompt_id=prompt_id, stat=measure.stat,
            kind=measure.kind, excess=excess, excess_share=share, baseline_share=base_share,
            share_after=cell.calls1 / total.calls1,
            rate_before=_ratio(cell.num0, cell.den0), rate_after=_ratio(cell.num1, cell.den1),
            calls_before=cell.calls0, calls_after=cell.calls1,
            score=share - base_share, appeared=cell.calls0 == 0, first_seen=cell.first_seen,
            describes=measure.describe(), threshold=measure.threshold,
            threshold_p=measure.threshold_p,
        ))
    order = {dim: i for i, dim in enumerate(DIMENSIONS)}
    out.sort(key=lambda a: (-round(a.score, 9), order[a.dimension], a.value, a.prompt_id or ""))
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


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


def explaining(attributions: Iterable[Attribution]) -> list[Attribution]:
    """The attributions that explain the excess (score ≥ EXPLAINS_SCORE), in order."""
    return [a for a in attributions if a.explains]


