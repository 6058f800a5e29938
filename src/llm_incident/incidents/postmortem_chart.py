"""What a postmortem chart shows, as plain data: the series per bucket and the layout drawn from it.

- `chart_markers(pm, route)`: the start, each applied control change, the close;
- `chart_series(session, route, start, end, marks=…)`: p95 tokens_out, p95 duration and flagged
  rate per bucket. Buckets are whole minutes on a grid anchored at the first mark (the start) and
  split at every mark, so no bucket straddles a mark: an event after the start is counted, and
  drawn, after the start line;
- `chart_layout(series, markers)`: everything `charts.route_chart_png` draws — the points (at
  their bucket's middle), each panel's y range and tick labels (percent ticks with as many
  decimals as their step needs, never two equal labels), the vertical lines, and the marker labels
  (marks closer than `LABEL_GAP` of the window share one label, so labels never overlap).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case
from sqlmodel import Session, select

from llm_incident.incidents.postmortem_model import ChartPoint, ChartSeries, Marker, Postmortem
from llm_incident.metrics.percentiles import nearest_rank, raw_rows
from llm_incident.metrics.scope import C, IS_FLAGGED, Scope, event_conditions
from llm_incident.metrics.sql_time import epoch_seconds

CHART_BUCKETS = 60
MIN_BUCKET = timedelta(minutes=1)
SLIVER = 0.25  # a grid edge closer than this many buckets to a mark gives way to the mark
LABEL_GAP = 0.025  # marks closer than this share of the window share a label
LABEL_CHARS = 40
PANELS = (
    ("p95_tokens_out", "p95 tokens_out"),
    ("p95_duration_ms", "p95 duration (ms)"),
    ("flagged_rate", "flagged rate"),
)
MIN_PERCENT_TOP = 1.0  # a flagged-rate axis reaches at least 1 %: 0.1 % is not drawn as a cliff


def chart_markers(pm: Postmortem, route: str | None = None) -> list[Marker]:
    """The start (the onset when known), each applied control change up to the end (of `route`
    when given), the close."""
    began = pm.began_at
    markers = [Marker(began, "start", "start")]
    for d in pm.mitigations:
        if began <= d.ts <= pm.as_of and route in (None, d.route):
            what = ", ".join(f"{k}={_word(d.after[k])}" for k in d.changed)
            markers.append(Marker(d.ts, what if route else f"{d.route}: {what}", "mitigation"))
    if pm.closed_at is not None:
        markers.append(Marker(pm.closed_at, "close", "close"))
    return markers


def _word(v: Any) -> str:
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def chart_window(pm: Postmortem) -> tuple[datetime, datetime] | None:
    """Baseline start → end of the incident (None when the incident has no span yet)."""
    if not pm.phases:
        return None
    return pm.phases[0].start, pm.as_of


def bucket_edges(start: datetime, end: datetime, width: timedelta,
                 marks: list[datetime]) -> list[datetime]:
    """Edges from `start` to `end`: a grid of `width` anchored at the first mark inside the window
    (at `start` without one), every mark an edge too; grid edges within SLIVER buckets of a mark
    are left out (no sliver buckets)."""
    inside = sorted({m.replace(microsecond=0) for m in marks if start < m < end})
    anchor = inside[0] if inside else start
    k = math.floor((start - anchor) / width) + 1
    grid = []
    while (edge := anchor + k * width) < end:
        grid.append(edge)
        k += 1
    near = width * SLIVER
    kept = [g for g in grid if all(abs(g - m) >= near for m in inside)]
    return sorted({start, *kept, *inside, end})


def chart_series(session: Session, route: str, start: datetime, end: datetime, *,
                 buckets: int = CHART_BUCKETS, scope: Scope | None = None,
                 marks: list[datetime] | None = None) -> ChartSeries:
    """p95 tokens_out, p95 duration and flagged rate of `route` per bucket over `[start, end)`.

    About `buckets` buckets of whole minutes (at least one), aligned to `marks` (see the module
    docstring). One query on the covering index reads four columns per event in the window;
    percentiles are nearest-rank, as in stats."""
    if start >= end:
        raise ValueError("chart window start must be before its end")
    origin = start.replace(microsecond=0)
    width = max(MIN_BUCKET, (end - origin) / max(1, buckets))
    width = timedelta(minutes=-(-width.total_seconds() // 60))  # round up to whole minutes
    edges = bucket_edges(origin, end, width, marks or [])
    offsets = [int((e - origin).total_seconds()) for e in edges]
    flagged = case((IS_FLAGGED, 1), else_=0)
    offset = (epoch_seconds(C.ts) - int(origin.timestamp())).self_group()
    stmt = (select(offset, C.tokens_out, C.duration_ms, flagged)
            .where(*event_conditions(route, start, end, scope)))
    grouped: dict[int, tuple[list[int], list[float], list[int]]] = {}
    for second, tokens_out, duration_ms, is_flagged in raw_rows(session, stmt):
        index = min(max(0, bisect.bisect_right(offsets, int(second)) - 1), len(edges) - 2)
        tokens, durations, flags = grouped.setdefault(index, ([], [], []))
        if tokens_out is not None:
            tokens.append(tokens_out)
        if duration_ms is not None:
            durations.append(duration_ms)
        flags.append(int(is_flagged))
    points = []
    for i, (left, right) in enumerate(zip(edges, edges[1:], strict=False)):
        tokens, durations, flags = grouped.get(i, ([], [], []))
        points.append(ChartPoint(
            ts=left, calls=len(flags), p95_tokens_out=_p95(tokens),
            p95_duration_ms=_p95(durations),
            flagged_rate=sum(flags) / len(flags) if flags else None, end=right))
    return ChartSeries(route=route, start=origin, end=end, bucket=width, points=points)


def _p95(values: list[Any]) -> Any:
    if not values:
        return None
    values.sort()
    return values[nearest_rank(95.0, len(values)) - 1]


# --- the layout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One stacked panel: its values per point (None: no calls), y range and tick labels."""

    stat: str
    label: str
    values: list[float | None]
    ylim: tuple[float, float]
    ticks: list[float]
    tick_labels: list[str]


@dataclass(frozen=True)
class MarkLabel:
    """A label at the top of the chart for one mark or several close ones."""

    ts: datetime
    text: str
    kind: str
    marks: int  # how many marks it stands for


@dataclass(frozen=True)
class ChartLayout:
    title: str
    start: datetime
    end: datetime
    baseline: tuple[datetime, datetime] | None  # shaded: before the start mark
    xs: list[datetime]  # each point's bucket middle
    panels: list[Panel]
    lines: list[Marker]  # a vertical line per mark
    labels: list[MarkLabel]


def _nice_step(top: float, bins: int = 5) -> float:
    raw = top / bins
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _decimals(step: float) -> int:
    """Decimals that tell ticks `step` apart (2.5 → 1, 0.2 → 1, 0.05 → 2)."""
    for d in range(0, 6):
        if abs(round(step, d) - step) < step * 1e-6:
            return d
    return 6


def axis(values: list[float | None], *, percent: bool) -> tuple[tuple[float, float], list[float],
                                                             list[str]]:
    """(y range, ticks, tick labels) from 0 to a nice top above the largest value."""
    present = [v for v in values if v is not None]
    top = max(max(present, default=0.0) * 1.1, MIN_PERCENT_TOP if percent else 1.0)
    if percent:
        top = min(top, 100.0)  # a rate never passes 100 %
    step = _nice_step(top)
    count = max(1, math.ceil(top / step - 1e-9))
    ticks = [round(i * step, 10) for i in range(count + 1)]
    d = _decimals(step)
    if percent:
        labels = [f"{t:.{d}f}%" for t in ticks]
    else:
        labels = [f"{t:,.{d}f}" for t in ticks]
    return (0.0, ticks[-1]), ticks, labels


def _labels(markers: list[Marker], start: datetime, end: datetime) -> list[MarkLabel]:
    """Marks closer than LABEL_GAP of the window share one label (their texts joined)."""
    gap = (end - start) * LABEL_GAP
    groups: list[list[Marker]] = []
    for m in sorted(markers, key=lambda m: m.ts):
        if groups and m.ts - groups[-1][0].ts < gap:
            groups[-1].append(m)
        else:
            groups.append([m])
    out = []
    for group in groups:
        text = " · ".join(m.label for m in group)
        if len(text) > LABEL_CHARS:
            text = text[: LABEL_CHARS - 1] + "…"
        kind = next((m.kind for m in group if m.kind == "start"), group[0].kind)
        out.append(MarkLabel(group[0].ts, text, kind, len(group)))
    return out


def chart_layout(series: ChartSeries, markers: list[Marker]) -> ChartLayout:
    """What the chart draws (see the module docstring); marks outside the window are left out."""
    markers = [m for m in markers if series.start <= m.ts <= series.end]
    start_mark = next((m for m in markers if m.kind == "start"), None)
    xs = [p.ts + ((p.end or p.ts + series.bucket) - p.ts) / 2 for p in series.points]
    panels = []
    for stat, label in PANELS:
        scale = 100.0 if stat == "flagged_rate" else 1.0
        values = [None if getattr(p, stat) is None else float(getattr(p, stat)) * scale
                  for p in series.points]
        ylim, ticks, tick_labels = axis(values, percent=stat == "flagged_rate")
        panels.append(Panel(stat, label, values, ylim, ticks, tick_labels))
    minutes = series.bucket.total_seconds() / 60
    baseline = ((series.start, start_mark.ts) if start_mark is not None
                and start_mark.ts > series.start else None)
    return ChartLayout(
        title=f"{series.route} — {minutes:g}-minute buckets (split at each mark), UTC",
        start=series.start, end=series.end, baseline=baseline, xs=xs, panels=panels,
        lines=markers, labels=_labels(markers, series.start, series.end))
