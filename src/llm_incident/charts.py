"""Headless PNG charts for postmortems (matplotlib, Agg canvas; no pyplot, no global state).

`route_chart_png(series, markers)`: three stacked panels over the same time axis — p95 tokens_out,
p95 duration (ms), flagged rate (%) — with the baseline shaded and vertical lines at the start,
each mitigation and the close. Same inputs → same bytes (no timestamp in the PNG metadata).
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from llm_incident.incidents.postmortem_model import ChartSeries, Marker

MARKER_COLORS = {"start": "#d62728", "mitigation": "#2ca02c", "close": "#7f7f7f"}
LABEL_CHARS = 40
PANELS = (
    ("p95_tokens_out", "p95 tokens_out", "#1f77b4"),
    ("p95_duration_ms", "p95 duration (ms)", "#9467bd"),
    ("flagged_rate", "flagged rate", "#ff7f0e"),
)


def _num(ts: datetime) -> float:
    return float(date2num(ts.astimezone(timezone.utc)))


def _values(series: ChartSeries, stat: str) -> list[float]:
    scale = 100.0 if stat == "flagged_rate" else 1.0
    out = []
    for point in series.points:
        v = getattr(point, stat)
        out.append(math.nan if v is None else float(v) * scale)
    return out


def route_chart_png(series: ChartSeries, markers: list[Marker], *, width: float = 10.0,
                    height: float = 7.5, dpi: int = 100) -> bytes:
    """The route's chart as PNG bytes (see the module docstring); markers outside the series'
    window are left out."""
    markers = [m for m in markers if series.start <= m.ts <= series.end]
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    half = series.bucket / 2
    xs = [_num(p.ts + half) for p in series.points]
    start_marker = next((m for m in markers if m.kind == "start"), None)
    minutes = series.bucket.total_seconds() / 60
    fig.suptitle(f"{series.route} — {minutes:g}-minute buckets, UTC", fontsize=12)
    for ax, (stat, label, color) in zip(axes, PANELS, strict=True):
        ys = _values(series, stat)
        ax.plot(xs, ys, color=color, linewidth=1.6, marker="o", markersize=2.5)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        if stat == "flagged_rate":
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
        if all(math.isnan(y) for y in ys):
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                    color="#7f7f7f")
            ax.set_ylim(0, 1)
        if start_marker is not None and start_marker.ts > series.start:
            ax.axvspan(_num(series.start), _num(start_marker.ts), color="#000000", alpha=0.05,
                       linewidth=0)
        for marker in markers:
            ax.axvline(_num(marker.ts), color=MARKER_COLORS.get(marker.kind, "#000000"),
                       linestyle="--" if marker.kind == "mitigation" else "-", linewidth=1.2)
    top = axes[0]
    for marker in markers:
        text = marker.label if len(marker.label) <= LABEL_CHARS else (
            marker.label[: LABEL_CHARS - 1] + "…")
        top.annotate(text, xy=(_num(marker.ts), 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -3), textcoords="offset points", rotation=90, va="top",
                     fontsize=8, color=MARKER_COLORS.get(marker.kind, "#000000"))
    if start_marker is not None and start_marker.ts > series.start:
        top.annotate("baseline", xy=(_num(series.start), 1.0),
                     xycoords=("data", "axes fraction"), xytext=(4, -12),
                     textcoords="offset points", fontsize=8, color="#555555")
    bottom = axes[-1]
    bottom.set_xlim(_num(series.start), _num(series.end))
    locator = AutoDateLocator(tz=timezone.utc)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=timezone.utc))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
