"""Ranking a shift's excess by dimension value: the `Measure` (a stat as `num / den`), the per-value
`Cells` summed before and after the onset, and `rank`, which scores each value's share of the
excess against its share of the traffic before (the method: `triage.attribution`'s docstring).
Pure: no database, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.compare import COMPARED, fmt
from llm_incident.triage.series import ERROR_CODE_PREFIX

# Dimensions examined, in tie-break order (prompt_version is keyed by its prompt_id).
DIMENSIONS = ("model", "provider", "prompt_version", "prompt_id", "region", "env",
              "customer_tier")
# A value "explains" the excess from this score on.
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



def explaining(attributions: Iterable[Attribution]) -> list[Attribution]:
    """The attributions that explain the excess (score ≥ EXPLAINS_SCORE), in order."""
    return [a for a in attributions if a.explains]
