"""Baseline vs now: every stat for both windows, absolute and relative deltas, a verdict per stat.

Verdicts are plain sentences a responder can paste into the incident thread, e.g.
`"p95 tokens_out 8.1× baseline (2,431 vs 300)"`, `"error rate up 2.0 pts (2.5% vs 0.5%)"`,
`"error rate +22.2 pts from 0 (22.2% vs 0.0%)"`, `"no traffic in the window"`. Relative deltas
are None whenever the baseline is 0 or missing — never a division by zero.

The summary ranks every change by `weight`, one scale for all kinds, so a change from a zero
baseline is ranked, not dropped:
- a rate by its absolute move: `RATE_POINTS` percentage points weigh as much as a doubling
  (0 → 22 % weighs 4.4, as a 5.4× move; 3 pts weigh 0.6, more than a 26 % move of avg tokens);
- any other stat by its relative move (|now − baseline| / baseline: +26 % weighs 0.26);
  from a zero baseline (no relative move) as a doubling, `FROM_ZERO`;
- error codes (`error_code_deltas`, the `TOP_CODES` biggest) as rates: each code's share of calls.
A change is worth reading when its weight is over `SAME`; ties keep the order of COMPARED, then
the codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.scope import Scope
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Baseline, Window, baseline_for, window_ending

# stat → (label, kind); kind picks the number format and how a change is phrased.
COMPARED: dict[str, tuple[str, str]] = {
    "calls": ("calls", "count"),
    "calls_per_min": ("calls/min", "number"),
    "flagged_rate": ("flagged rate", "rate"),
    "error_rate": ("error rate", "rate"),
    "p50_duration_ms": ("p50 duration", "ms"),
    "p95_duration_ms": ("p95 duration", "ms"),
    "p99_duration_ms": ("p99 duration", "ms"),
    "avg_tokens_in": ("avg tokens_in", "number"),
    "p95_tokens_in": ("p95 tokens_in", "count"),
    "avg_tokens_out": ("avg tokens_out", "number"),
    "p95_tokens_out": ("p95 tokens_out", "count"),
    "total_cost_usd": ("total cost", "usd"),
    "cost_per_call_usd": ("cost per call", "usd"),
    "retry_share": ("retry share", "rate"),
}
# Stats that rollups give within 1 % (percentiles); every other stat is exact on both paths.
SKETCHED = ("p50_duration_ms", "p95_duration_ms", "p99_duration_ms", "p95_tokens_in",
            "p95_tokens_out")
# Within ±SAME of the baseline reads "about the same"; at MULTIPLE× or more it reads "N× baseline".
SAME = 0.10
MULTIPLE = 1.5
# Ranking weights (see the module docstring): RATE_POINTS pts of a rate, or a move from 0, weigh
# as much as a doubling; a rate under SAME × RATE_POINTS (0.5 pts) is left out of the summary.
RATE_POINTS = 5.0
FROM_ZERO = 1.0
TOP_CODES = 3
CODE_PREFIX = "error_code:"  # stat name of one error code's share of calls: "error_code:429"


@dataclass(frozen=True)
class Delta:
    """How one stat moved: `abs` = now − baseline, `rel` = abs / baseline (None when undefined)."""

    stat: str
    now: float | None
    baseline: float | None
    abs: float | None
    rel: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now, "baseline": self.baseline, "abs": self.abs, "rel": self.rel,
                "verdict": self.verdict}


@dataclass
class Comparison:
    """One route's window against its baseline."""

    route: str | None
    window: Window
    baseline: Baseline
    now: WindowStats
    baseline_stats: WindowStats
    deltas: dict[str, Delta] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "window": {**self.window.to_dict(), "minutes": self.window.minutes},
            "baseline": self.baseline.to_dict(),
            "scope": self.scope,
            "now": self.now.to_dict(),
            "baseline_stats": self.baseline_stats.to_dict(),
            "deltas": {name: d.to_dict() for name, d in self.deltas.items()},
            "summary": summary(self),
        }

    def code_deltas(self, limit: int = TOP_CODES) -> dict[str, Delta]:
        """`error_code_deltas` of the two windows."""
        return error_code_deltas(self.now, self.baseline_stats, limit)


def compare_windows(
    session: Session,
    route: str | None,
    *,
    now: datetime,
    window: timedelta | Window,
    baseline: str | Window | Baseline = "previous",
    env: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    region: str | None = None,
    customer_tier: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> Comparison:
    """Stats for the window (a span ending at `now`, or an explicit Window) and its baseline
    (`previous` | `day` | `week` | `"<start>/<end>"` | a Window or Baseline), with a Delta per stat.

    Raises `WindowError` for a baseline text it cannot read."""
    current = window if isinstance(window, Window) else window_ending(now, window)
    base = baseline_for(current, baseline)
    scope = Scope(env, model, provider, region, customer_tier)
    now_stats = stats_for(session, route, current.start, current.end, scope=scope, where=where)
    base_stats = stats_for(session, route, base.window.start, base.window.end, scope=scope,
                           where=where, path="rollups")  # a baseline: rollups when they answer
    return Comparison(
        route=route, window=current, baseline=base, now=now_stats, baseline_stats=base_stats,
        deltas=deltas(now_stats, base_stats), scope=scope.to_dict(),
    )


def deltas(now: WindowStats, base: WindowStats) -> dict[str, Delta]:
    """A Delta for every stat in COMPARED; a percentile read from rollups on either side says
    so in its verdict ("… (≈, ±1 %)")."""
    out = {
        stat: delta(stat, getattr(now, stat), getattr(base, stat), now.calls, base.calls)
        for stat in COMPARED
    }
    note = now.precision or base.precision
    if note:
        for stat in SKETCHED:
            out[stat] = replace(out[stat], verdict=f"{out[stat].verdict} ({note})")
    return out


def error_code_deltas(now: WindowStats, base: WindowStats, limit: int = TOP_CODES
                      ) -> dict[str, Delta]:
    """code → Delta of its share of calls, for the `limit` codes biggest in either window
    (largest first, then by code); stat names are `CODE_PREFIX + code`."""
    codes = set(now.error_codes) | set(base.error_codes)
    biggest = sorted(codes, key=lambda c: (-max(now.error_codes.get(c, 0),
                                                base.error_codes.get(c, 0)), c))[:limit]
    return {code: delta(CODE_PREFIX + code, _share(now, code), _share(base, code), now.calls,
                        base.calls)
            for code in biggest}


def _share(stats: WindowStats, code: str) -> float | None:
    return stats.error_codes.get(code, 0) / stats.calls if stats.calls else None


def label_kind(stat: str) -> tuple[str, str]:
    """(label, kind) of a stat of COMPARED or an error code's share ("errors 429", "rate")."""
    if stat.startswith(CODE_PREFIX):
        return f"errors {stat.removeprefix(CODE_PREFIX)}", "rate"
    return COMPARED.get(stat, (stat, "number"))


def delta(
    stat: str, now: float | None, base: float | None, now_calls: int = 1, base_calls: int = 1
) -> Delta:
    """The change of one stat and its verdict; `*_calls` say whether each window had traffic."""
    change = rel = None
    if now is not None and base is not None:
        change = now - base
        rel = change / base if base else None
    return Delta(stat, now, base, change, rel, verdict(stat, now, base, now_calls, base_calls))


def verdict(
    stat: str, now: float | None, base: float | None, now_calls: int = 1, base_calls: int = 1
) -> str:
    """One plain-language line on how `stat` compares with the baseline."""
    label, kind = label_kind(stat)
    if now_calls == 0 and base_calls == 0:
        return f"{label}: no traffic in the window or the baseline"
    if now_calls == 0:
        return f"{label}: no traffic in the window (baseline {fmt(base, kind)})"
    if base_calls == 0:
        return f"{label} {fmt(now, kind)}: no traffic in the baseline to compare with"
    if now is None and base is None:
        return f"{label}: no data in either window"
    if now is None or base is None:
        missing = "the window" if now is None else "the baseline"
        return f"{label}: no data in {missing} ({fmt(now, kind)} vs {fmt(base, kind)})"
    both = f"({fmt(now, kind)} vs {fmt(base, kind)})"
    if now == base:
        return f"{label} unchanged at {fmt(now, kind)}"
    if kind == "rate":
        points = (now - base) * 100
        if base == 0:
            return f"{label} {points:+.1f} pts from 0 {both}"
        direction = "up" if points > 0 else "down"
        ratio = f", {now / base:.1f}× baseline" if base and now / base >= MULTIPLE else ""
        return f"{label} {direction} {abs(points):.1f} pts {both[:-1]}{ratio})"
    if base == 0:
        return f"{label} {fmt(now, kind)}, up from 0 in the baseline"
    ratio = now / base
    if ratio >= MULTIPLE:
        return f"{label} {ratio:.1f}× baseline {both}"
    if abs(ratio - 1) <= SAME:
        return f"{label} about the same as baseline {both}"
    direction = "up" if ratio > 1 else "down"
    return f"{label} {direction} {abs(ratio - 1) * 100:.0f}% vs baseline {both}"


def fmt(value: float | None, kind: str) -> str:
    """A stat value as a responder reads it: 4.2%, 1,234 ms, $0.0042, 2,431."""
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "ms":
        return f"{value:,.0f} ms"
    if kind == "usd":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def weight(d: Delta) -> float:
    """How much a change matters, on one scale for every kind (see the module docstring)."""
    if not d.abs:
        return 0.0
    if label_kind(d.stat)[1] == "rate":
        return abs(d.abs) * 100 / RATE_POINTS
    return FROM_ZERO if d.rel is None else abs(d.rel)


def moved(d: Delta) -> bool:
    """True when the change is worth reading: its weight is over SAME."""
    return weight(d) > SAME


def summary(comparison: Comparison, limit: int = 4) -> list[str]:
    """The verdicts worth reading first: traffic state, then the heaviest moves (`weight`),
    changes from a zero baseline and error codes included."""
    if comparison.now.calls == 0 or comparison.baseline_stats.calls == 0:
        return [comparison.deltas["calls"].verdict] if comparison.deltas else []
    candidates = [*comparison.deltas.values(), *comparison.code_deltas().values()]
    ranked = sorted((d for d in candidates if moved(d)), key=weight, reverse=True)
    return [d.verdict for d in ranked[:limit]]
