"""Shift detection: whether, when and how each key stat of a route moved over the last hours.

Method, per stat, over the raw per-call samples of a `MinuteSeries` (per-minute counts for
calls_per_min), so that 5 calls/min works as well as 200 — every call weighs one, a quiet minute
does not count as much as a busy one:

1. Search: for every candidate split at a minute boundary k — at least `min_segment` minutes
   and `min_before` / `min_after` samples each side — a log-likelihood ratio of "the samples
   changed at k" is read off cumulative sums of per-minute sums; the largest one is the step
   candidate (the maximum-likelihood location). Rates (0/1 samples): the binomial likelihood
   ratio (rare events are located far better than by a z statistic). p95 stats: the same on the
   share of calls above the window's p90 (a tail change moves few calls a lot). Averages, cost
   and calls/min: a rank CUSUM (Pettitt's test) — all samples ranked once, the standardized
   Mann-Whitney z of "before k vs from k on" per split, scored z²/2.
2. Step or drift: on the per-minute mean ranks (weighted by calls), the best step at that split is
   compared with the best hinge — flat, then a linear trend from a minute j on (j searched like k).
   The hinge fitting better by more than `DRIFT_MARGIN` residual variances (and trending the same
   way) makes the candidate a drift from j.
3. Confirmation, between the raw samples before and from the onset: Fisher's exact test for rates
   (flagged, error, per-code error, retry shares), else the two-sided Mann-Whitney U test
   (asymptotic, tie-corrected, with continuity correction — the figure
   `scipy.stats.mannwhitneyu` gives, computed from the ranks already at hand). The p-value is
   multiplied by the number of candidate splits searched (Bonferroni over the search, so picking
   the best split does not manufacture significance); `confidence = 1 - that p` (0..1) and a shift
   needs `confidence >= 1 - alpha`.
4. Gates: at least `min_before` (30) samples before and `min_after` (10) from the onset (minutes,
   for calls_per_min); a practical effect — a ratio after / before of >= `min_ratio` (1.25) or
   <= 1 / min_ratio (0.8), or for rates an absolute change of >= `min_points` (2 pts); and the
   stat's own before → after change in the direction the search saw. So a traffic surge with
   unchanged behaviour moves calls_per_min and nothing else.

"before" is the stat over the lookback before the onset, "after" over the onset to the end of the
window (`now`), both over the raw samples: p95 values are nearest-rank percentiles as in
`metrics.stats`. Deterministic: no sampling, no randomness.

The route's onset (`RouteShifts.onset`) for several stats that stepped within `AGREE_MINUTES` of
each other is the minute maximising their summed likelihood ratios (one change seen by several
stats, located by all of them); further apart, the earliest step began it.

Measured on generated scenarios with known truth (bench/triage.py): onset within ±2 min and
"no shift" on controls at 5, 30 and 200 calls/min.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from scipy.special import xlogy
from scipy.stats import fisher_exact, norm
from sqlalchemy.orm import Session

from llm_incident.metrics.scope import Scope
from llm_incident.triage.series import (
    CALLS_PER_MIN,
    ERROR_CODE_PREFIX,
    MINUTE,
    MinuteSeries,
    aggregate,
    floor_minute,
    is_rate,
    minute_series,
)

STATS = ("flagged_rate", "p95_duration_ms", "p95_tokens_out", "avg_tokens_in",
         "cost_per_call_usd", "error_rate", "calls_per_min", "retry_share")
ERROR_CODE_STATS = ERROR_CODE_PREFIX + "*"  # in CLASS_STATS: every error_code_rate:<code>
# The stats whose shift defines the onset of an incident of each class.
CLASS_STATS: dict[str, tuple[str, ...]] = {
    "quality": ("flagged_rate",),
    "latency": ("p95_duration_ms",),
    "cost": ("p95_tokens_out", "cost_per_call_usd", "avg_tokens_in"),
    "provider": ("error_rate", ERROR_CODE_STATS, "retry_share"),
    "unknown": tuple(s for s in STATS if s != CALLS_PER_MIN) + (ERROR_CODE_STATS,),
}

MIN_SEGMENT = 5        # minutes each side of a split
MIN_BEFORE = 30        # samples before the onset
MIN_AFTER = 10         # samples from the onset on
ALPHA = 1e-2           # after the Bonferroni correction over the splits searched
MIN_RATIO = 1.25       # practical effect for values (and its inverse, 0.8)
MIN_POINTS = 0.02      # practical effect for rates: 2 percentage points
DEFAULT_LOOKBACK = timedelta(hours=6)
MIN_LOOKBACK, MAX_LOOKBACK = timedelta(minutes=10), timedelta(hours=24)
TAIL_STATS = ("p95_duration_ms", "p95_tokens_out")
TAIL_QUANTILE = 0.9    # tail stats: the search scans the share of calls above the window's p90
DRIFT_MARGIN = 20.0    # a drift must beat the step by this many residual variances
AGREE_MINUTES = 15     # steps of one class this close are one change (RouteShifts.onset)
MAX_HINGE_CANDIDATES = 480  # drift starts tried (evenly spaced beyond that)


@dataclass
class Shift:
    """Whether and how one stat moved; kind "none" carries the window's value in `before`."""

    stat: str
    kind: str                        # "step" | "drift" | "none"
    onset: datetime | None           # first minute of the new regime / start of the drift
    before: float | None
    after: float | None
    ratio: float | None              # after / before (None when before is 0 or unknown)
    confidence: float                # 1 - Bonferroni-corrected p of the confirming test
    n_before: int
    n_after: int
    reason: str
    effect: float = 0.0              # |log(after / before)| (rates: each floored at 1 pt)
    # log-likelihood ratio of a step at each minute (index = minutes from the series start)
    evidence: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def moved(self) -> bool:
        return self.kind != "none"

    def to_dict(self) -> dict[str, Any]:
        return {"stat": self.stat, "kind": self.kind,
                "onset": None if self.onset is None else self.onset.isoformat(),
                "before": self.before, "after": self.after, "ratio": self.ratio,
                "confidence": self.confidence, "n_before": self.n_before,
                "n_after": self.n_after, "reason": self.reason, "effect": self.effect}


def _matches(stat: str, names: Iterable[str]) -> bool:
    return any(stat == name or (name.endswith("*") and stat.startswith(name[:-1]))
               for name in names)


@dataclass
class RouteShifts:
    """The shifts of every stat of one route over `[start, end)`."""

    route: str
    start: datetime
    end: datetime
    shifts: dict[str, Shift]
    series: MinuteSeries | None = field(default=None, repr=False)

    def onset(self, stats: Iterable[str] | None = None) -> datetime | None:
        """When the confident STEPs among `stats` began (all stats when None;
        "error_code_rate:*" stands for every code): with one step, its onset; with several, the
        minute that maximises their summed evidence (their common change point, so one noisy
        stat cannot drag it early), or the earliest onset when they disagree by more than
        `AGREE_MINUTES` (separate changes: the first one began it)."""
        names = list(stats) if stats is not None else None
        steps = [s for s in self.shifts.values() if s.kind == "step" and s.onset is not None
                 and (names is None or _matches(s.stat, names))]
        if not steps:
            return None
        earliest = min(s.onset for s in steps)
        if len(steps) == 1 or max(s.onset for s in steps) - earliest > AGREE_MINUTES * MINUTE:
            return earliest
        profiles = [s.evidence for s in steps if s.evidence is not None]
        if not profiles or self.series is None:
            return earliest
        total = np.sum(profiles, axis=0)
        return self.series.minutes[int(np.argmax(total))]

    def moved(self) -> list[Shift]:
        """Confident steps and drifts, largest effect first."""
        return sorted((s for s in self.shifts.values() if s.moved),
                      key=lambda s: (-s.effect, s.stat))

    def to_dict(self) -> dict[str, Any]:
        onset = self.onset()
        return {"route": self.route, "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "onset": None if onset is None else onset.isoformat(),
                "moved": [s.stat for s in self.moved()],
                "shifts": {name: s.to_dict() for name, s in self.shifts.items()}}


def _ranks(values: np.ndarray, rate: bool) -> tuple[np.ndarray, float]:
    """Mid-ranks of `values` and the tie term sum(t^3 - t) of the variance."""
    n = values.size
    if rate:
        ones = int(values.sum())
        zeros = n - ones
        ranks = np.where(values > 0, zeros + (ones + 1) / 2, (zeros + 1) / 2)
        return ranks, float(ones ** 3 - ones + zeros ** 3 - zeros)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, n]).astype(float)
    ranks = np.empty(n)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2, sizes.astype(int))
    return ranks, float((sizes ** 3 - sizes).sum())


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _none(stat: str, series: MinuteSeries, reason: str, n: int) -> Shift:
    whole = series.value(stat, series.start, series.end)
    return Shift(stat, "none", None, whole, None, None, 0.0, n, 0, reason)


def detect(
    series: MinuteSeries,
    stat: str,
    *,
    min_segment: int = MIN_SEGMENT,
    min_before: int = MIN_BEFORE,
    min_after: int = MIN_AFTER,
    alpha: float = ALPHA,
    min_ratio: float = MIN_RATIO,
    min_points: float = MIN_POINTS,
) -> Shift:
    """Whether and when `stat` shifted over the series (see the module docstring)."""
    values, minute = series.observations(stat)
    n, n_minutes, rate = values.size, len(series.minutes), is_rate(stat)
    if n < min_before + min_after or n_minutes < 2 * min_segment:
        return _none(stat, series, f"too few calls ({n} in the window)", n)
    ranks, tie_term = _ranks(values, rate)
    counts = np.bincount(minute, minlength=n_minutes).astype(float)
    rank_sums = np.bincount(minute, weights=ranks, minlength=n_minutes)
    n1 = np.cumsum(counts)[:-1]
    r1 = np.cumsum(rank_sums)[:-1]
    splits = np.arange(1, n_minutes)
    n2 = n - n1
    valid = ((splits >= min_segment) & (n_minutes - splits >= min_segment)
             & (n1 >= min_before) & (n2 >= min_after))
    if not valid.any():
        most_after = int(n2[splits == n_minutes - min_segment][0])
        return _none(stat, series, f"too few calls ({n - most_after} before, {most_after} after "
                                   f"the latest possible onset)", n)
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if not (variance[valid] > 0).any():
        return _none(stat, series, "no shift (constant)", n)
    tail = stat in TAIL_STATS
    if rate or tail:  # the binomial likelihood ratio of the 0/1 samples, or of exceedances
        above = values > np.quantile(values, TAIL_QUANTILE) if tail else values
        hits = np.bincount(minute, weights=above.astype(float), minlength=n_minutes)
        s1 = np.cumsum(hits)[:-1]
        score = _bernoulli_llr(s1, n1, s1[-1] + hits[-1], n)
        trend = (s1[-1] + hits[-1] - s1) / np.maximum(n2, 1) - s1 / np.maximum(n1, 1)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            trend = np.where(variance > 0, (n1 * (n + 1) / 2 - r1) / np.sqrt(variance), 0.0)
        score = trend ** 2 / 2  # the Gaussian likelihood ratio of a mean shift in the ranks
    score = np.where(valid, score, -np.inf)
    best = int(np.argmax(score))
    split, direction = int(splits[best]), float(np.sign(trend[best]))  # + = larger after
    kind = "step"
    drift_at = _drift_start(counts, rank_sums, split, splits[valid], direction)
    if drift_at is not None:
        kind, split = "drift", drift_at
    shift = _confirm(series, stat, kind, split, direction, int(valid.sum()), ranks, tie_term,
                     alpha=alpha, min_before=min_before, min_after=min_after,
                     min_ratio=min_ratio, min_points=min_points)
    if shift.kind == "step":
        shift.evidence = np.concatenate(([-np.inf], score))  # index = minute index of the onset
    return shift


def _bernoulli_llr(s1: np.ndarray, n1: np.ndarray, total: float, n: int) -> np.ndarray:
    """Log-likelihood ratio of "two rates, split here" against one rate, per split."""
    def loglik(hits: np.ndarray, calls: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(calls > 0, hits / np.maximum(calls, 1), 0.0)
        return xlogy(hits, p) + xlogy(calls - hits, 1 - p)
    return loglik(s1, n1) + loglik(total - s1, n - n1) - loglik(np.array(total), np.array(n))


def _drift_start(counts: np.ndarray, rank_sums: np.ndarray, split: int, candidates: np.ndarray,
                 direction: float) -> int | None:
    """The start of a hinge (flat, then linear) that fits the per-minute mean ranks better than
    the step at `split`, trending in `direction`; None when the step fits better."""
    seen = counts > 0
    w, t = counts[seen], np.flatnonzero(seen).astype(float)
    y = rank_sums[seen] / w
    total = w.sum()
    mean = (w * y).sum() / total
    syy = (w * (y - mean) ** 2).sum()
    before = t < split
    wb, wa = w[before].sum(), w[~before].sum()
    if wb == 0 or wa == 0:
        return None
    mb, ma = (w[before] * y[before]).sum() / wb, (w[~before] * y[~before]).sum() / wa
    sse_step = (w[before] * (y[before] - mb) ** 2).sum() + (w[~before] * (y[~before] - ma) ** 2).sum()
    if candidates.size > MAX_HINGE_CANDIDATES:
        candidates = candidates[np.linspace(0, candidates.size - 1, MAX_HINGE_CANDIDATES)
                                .astype(int)]
    x = np.maximum(0.0, t[None, :] - candidates[:, None].astype(float))   # (J, T)
    xm = (x * w).sum(axis=1) / total
    xc = x - xm[:, None]
    sxx = (w * xc ** 2).sum(axis=1)
    sxy = (w * xc * (y - mean)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = np.where(sxx > 0, syy - sxy ** 2 / sxx, np.inf)
    best = int(np.argmin(sse))
    noise = min(sse[best], sse_step) / max(t.size - 3, 1)  # residual variance per call weight
    if (sse_step - sse[best]) > DRIFT_MARGIN * noise and np.sign(sxy[best]) == direction:
        return int(candidates[best])
    return None


def _confirm(series: MinuteSeries, stat: str, kind: str, split: int, direction: float,
             searched: int, ranks: np.ndarray, tie_term: float, *, alpha: float,
             min_before: int, min_after: int, min_ratio: float, min_points: float) -> Shift:
    n_minutes = len(series.minutes)
    before = series.sample_array(stat, 0, split)
    after = series.sample_array(stat, split, n_minutes)
    nb, na = before.size, after.size
    onset = series.minutes[split]
    if nb < min_before or na < min_after:
        return _none(stat, series, f"too few calls ({nb} before, {na} after)", nb + na)
    b, a = aggregate(stat, before), aggregate(stat, after)
    ratio = a / b if b else None
    floor = 0.01 if is_rate(stat) else 1e-12
    effect = abs(math.log(max(a, floor) / max(b, floor)))
    change = f"{_fmt(b)} → {_fmt(a)}" + (f" (×{ratio:.2f})" if ratio is not None else "")
    if is_rate(stat):
        large = abs(a - b) >= min_points
        change = f"{b:.1%} → {a:.1%}"
    else:
        large = ratio is None and a > 0 or ratio is not None and (
            ratio >= min_ratio or ratio <= 1 / min_ratio)
    at = onset.strftime("%H:%M")
    counts = dict(n_before=nb, n_after=na)
    if not large or np.sign(a - b) != direction:  # (no test needed)
        return _none(stat, series, f"no shift (change too small: {change} from {at})", nb + na)
    if is_rate(stat):
        hits_b, hits_a = int(before.sum()), int(after.sum())
        p = fisher_exact([[hits_b, nb - hits_b], [hits_a, na - hits_a]]).pvalue
    else:
        p = _mann_whitney_p(ranks, nb, na, tie_term)
    p = min(1.0, float(p) * searched)
    if p >= alpha:
        return _none(stat, series, f"no shift (best split {at}: {change}, p={p:.2g})", nb + na)
    words = "step at" if kind == "step" else "drift since"
    return Shift(stat, kind, onset, b, a, ratio, 1.0 - p, reason=f"{words} {at}: {change}",
                 effect=effect, **counts)


def _mann_whitney_p(ranks: np.ndarray, nb: int, na: int, tie_term: float) -> float:
    """Two-sided asymptotic Mann-Whitney p of the first `nb` ranks vs the last `na` (the samples
    are in minute order), tie-corrected with continuity correction, as scipy computes it."""
    n = nb + na
    u = ranks[:nb].sum() - nb * (nb + 1) / 2
    mu = nb * na / 2
    sigma = math.sqrt(nb * na / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u - mu) - 0.5) / sigma
    return float(min(1.0, 2 * norm.sf(max(z, 0.0))))


def detect_route(
    session: Session,
    route: str,
    *,
    now: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
    scope: Scope | None = None,
    stats: Iterable[str] | None = None,
) -> RouteShifts:
    """Shifts of every stat of `route` over the `lookback` (10 min .. 24 h) of whole minutes
    before `now` (its current, partial minute left out): `STATS` plus `error_code_rate:<code>`
    for each code seen, or just `stats`."""
    if not MIN_LOOKBACK <= lookback <= MAX_LOOKBACK:
        raise ValueError(f"lookback must be between {MIN_LOOKBACK} and {MAX_LOOKBACK}")
    end = floor_minute(now)
    series = minute_series(session, route, end - lookback, end, scope=scope)
    if stats is None:
        names = list(STATS) + [ERROR_CODE_PREFIX + code for code in series.error_codes]
    else:
        names = list(stats)
    return RouteShifts(route, series.start, series.end,
                       {name: detect(series, name) for name in names}, series)


__all__ = ["CLASS_STATS", "STATS", "RouteShifts", "Shift", "detect", "detect_route"]
