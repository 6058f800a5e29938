"""Headless PNG charts for postmortems (matplotlib, Agg canvas; no pyplot, no global state).

`route_chart_png(series, markers)`: three stacked panels over the same time axis — p95 tokens_out,
p95 duration (ms), flagged rate (%) — with the baseline shaded and vertical lines at the start,
each mitigation and the close. It draws `postmortem_chart.chart_layout` (points, ranges, tick
labels, marks and their labels), which tests read. Same inputs → same bytes (no timestamp in the
PNG metadata).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure

from llm_incident.incidents.postmortem_chart import axis, chart_layout
from llm_incident.incidents.postmortem_model import ChartSeries, Marker

MARKER_COLORS = {"start": "#d62728", "mitigation": "#2ca02c", "close": "#7f7f7f",
                 "change": "#1f77b4", "control": "#2ca02c", "alert": "#d62728",
                 "incident": "#8c564b"}
COLORS = {"p95_tokens_out": "#1f77b4", "p95_duration_ms": "#9467bd", "flagged_rate": "#ff7f0e",
          "total_cost_usd": "#17becf"}
UNITS = {"ms": " (ms)", "usd": " per bucket"}
MAX_MARK_LABELS = 12  # the newest marks get a label; every mark gets its line


@dataclass(frozen=True)
class RangePanel:
    """One stat over the range: `values` per bucket (None: no calls), its kind (rate, ms,
    count, usd) and the bucket starts and ends."""

    stat: str
    label: str
    kind: str
    starts: Sequence[datetime]
    ends: Sequence[datetime]
    values: Sequence[float | None]


@dataclass(frozen=True)
class RangeMark:
    ts: datetime
    label: str
    kind: str


def _num(ts: datetime) -> float:
    return float(date2num(ts.astimezone(timezone.utc)))


def route_chart_png(series: ChartSeries, markers: list[Marker], *, width: float = 10.0,
                    height: float = 7.5, dpi: int = 100) -> bytes:
    """The route's chart as PNG bytes: exactly what `chart_layout(series, markers)` says (see
    the module docstring); markers outside the series' window are left out."""
    layout = chart_layout(series, markers)
    fig, axes = _figure(len(layout.panels), width, height, dpi)
    xs = [_num(x) for x in layout.xs]
    fig.suptitle(layout.title, fontsize=12)
    # the line breaks at the start: no segment suggests a rise before the incident began
    cut = (sum(x < layout.baseline[1] for x in layout.xs) if layout.baseline is not None
           else 0)
    for ax, panel in zip(axes, layout.panels, strict=True):
        ys = [math.nan if v is None else v for v in panel.values]
        for part in (slice(0, cut), slice(cut, None)):
            ax.plot(xs[part], ys[part], color=COLORS.get(panel.stat, "#1f77b4"), linewidth=1.6,
                    marker="o", markersize=2.5)
        ax.set_ylabel(panel.label)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(*panel.ylim)
        ax.set_yticks(panel.ticks, panel.tick_labels)
        if all(v is None for v in panel.values):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                    color="#7f7f7f")
        if layout.baseline is not None:
            ax.axvspan(_num(layout.baseline[0]), _num(layout.baseline[1]), color="#000000",
                       alpha=0.05, linewidth=0)
        for marker in layout.lines:
            ax.axvline(_num(marker.ts), color=MARKER_COLORS.get(marker.kind, "#000000"),
                       linestyle="--" if marker.kind == "mitigation" else "-", linewidth=1.2)
    top = axes[0]
    for label in layout.labels:
        top.annotate(label.text, xy=(_num(label.ts), 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -3), textcoords="offset points", rotation=90, va="top",
                     fontsize=8, color=MARKER_COLORS.get(label.kind, "#000000"))
    if layout.baseline is not None:
        top.annotate("baseline", xy=(_num(layout.start), 1.0),
                     xycoords=("data", "axes fraction"), xytext=(4, -12),
                     textcoords="offset points", fontsize=8, color="#555555")
    bottom = axes[-1]
    bottom.set_xlim(_num(layout.start), _num(layout.end))
    locator = AutoDateLocator(tz=timezone.utc)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=timezone.utc))
    return _png(fig)


def _figure(rows: int, width: float, height: float, dpi: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    return fig, [row[0] for row in axes]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _scaled(panel: RangePanel) -> list[float | None]:
    return [None if v is None else float(v) * (100.0 if panel.kind == "rate" else 1.0)
            for v in panel.values]


def _axis(kind: str, values: list[float | None]) -> tuple[tuple[float, float], list[float],
                                                         list[str]]:
    """The postmortem chart's axis; dollars scaled first, so cents get ticks of their own."""
    if kind != "usd":
        return axis(values, percent=kind == "rate")
    top = max((v for v in values if v is not None), default=0.0)
    scale = 10.0 ** max(0, math.ceil(-math.log10(top))) if top > 0 else 1.0
    (low, high), ticks, _ = axis([None if v is None else v * scale for v in values],
                                 percent=False)
    ticks = [t / scale for t in ticks]
    return (low / scale, high / scale), ticks, [f"${t:,.6g}" for t in ticks]


def range_chart_png(title: str, panels: Sequence[RangePanel], marks: Sequence[RangeMark], *,
                    start: datetime, end: datetime, width: float = 10.0, height: float = 9.0,
                    dpi: int = 100) -> bytes:
    """The panels stacked over `[start, end)`, a line per mark inside it (see the module
    docstring), as PNG bytes."""
    fig, axes = _figure(len(panels), width, height, dpi)
    fig.suptitle(title, fontsize=12)
    inside = sorted((m for m in marks if start <= m.ts <= end), key=lambda m: m.ts)
    for ax, panel in zip(axes, panels, strict=True):
        values = _scaled(panel)
        xs = [(_num(a) + _num(b)) / 2 for a, b in zip(panel.starts, panel.ends, strict=True)]
        ys = [math.nan if v is None else v for v in values]
        ax.plot(xs, ys, color=COLORS.get(panel.stat, "#1f77b4"), linewidth=1.6, marker="o",
                markersize=2.5)
        ylim, ticks, labels = _axis(panel.kind, values)
        ax.set_ylabel(panel.label + UNITS.get(panel.kind, ""))
        ax.grid(True, alpha=0.3)
        ax.set_ylim(*ylim)
        ax.set_yticks(ticks, labels)
        if all(v is None for v in values):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                    color="#7f7f7f")
        for mark in inside:
            ax.axvline(_num(mark.ts), color=MARKER_COLORS.get(mark.kind, "#000000"),
                       linestyle="--", linewidth=1.0)
    for mark in inside[-MAX_MARK_LABELS:]:
        text = mark.label if len(mark.label) <= 40 else mark.label[:39] + "…"
        label = axes[0].annotate(
            text, xy=(_num(mark.ts), 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
            textcoords="offset points", rotation=90, va="top", fontsize=8,
            color=MARKER_COLORS.get(mark.kind, "#000000"))
        label.set_in_layout(False)  # drawn over the panel, never squeezing it
    bottom = axes[-1]
    bottom.set_xlim(_num(start), _num(end))
    bottom.xaxis.set_major_locator(AutoDateLocator(tz=timezone.utc))
    span_days = (end - start).total_seconds() / 86400
    fmt = "%H:%M" if span_days <= 1 else "%m-%d %H:%M" if span_days <= 7 else "%m-%d"
    bottom.xaxis.set_major_formatter(DateFormatter(fmt, tz=timezone.utc))
    return _png(fig)
