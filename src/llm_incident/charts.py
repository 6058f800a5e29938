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
from datetime import datetime, timezone

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure

from llm_incident.incidents.postmortem_chart import chart_layout
from llm_incident.incidents.postmortem_model import ChartSeries, Marker

MARKER_COLORS = {"start": "#d62728", "mitigation": "#2ca02c", "close": "#7f7f7f"}
COLORS = {"p95_tokens_out": "#1f77b4", "p95_duration_ms": "#9467bd", "flagged_rate": "#ff7f0e"}


def _num(ts: datetime) -> float:
    return float(date2num(ts.astimezone(timezone.utc)))


def route_chart_png(series: ChartSeries, markers: list[Marker], *, width: float = 10.0,
                    height: float = 7.5, dpi: int = 100) -> bytes:
    """The route's chart as PNG bytes: exactly what `chart_layout(series, markers)` says (see
    the module docstring); markers outside the series' window are left out."""
    layout = chart_layout(series, markers)
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(layout.panels), 1, sharex=True)
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
