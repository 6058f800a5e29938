"""Server-side SVG: a line chart with marks, and a sparkline. Pure functions returning markup.

A chart draws one `<circle class="pt">` per bucket with a value, joined by one line across
buckets without one (sparse traffic still reads as a line); each mark is a vertical line whose `<title>` names it (shown on hover)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from llm_incident.dashboard.series import Point
from llm_incident.metrics.compare import fmt

WIDTH, HEIGHT = 720, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 12, 24
SPARK_W, SPARK_H = 120, 24


@dataclass(frozen=True)
class Mark:
    """Something that happened at `ts`, drawn as a vertical line; `kind` picks its colour."""

    ts: datetime
    label: str
    kind: str  # change | control | alert | incident


def _path(run: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in run)


def _top(values: list[float], kind: str) -> float:
    top = max(values, default=0.0)
    if kind == "rate":
        return min(1.0, max(top * 1.1, 0.01))
    return top * 1.1 if top > 0 else 1.0


def line_chart(points: list[Point], *, start: datetime, end: datetime, kind: str, title: str,
               marks: list[Mark] = ()) -> Markup:
    """A chart of `points` over `[start, end)` with y from 0 to just above the largest value."""
    span = (end - start).total_seconds() or 1.0
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    values = [p.value for p in points if p.value is not None]
    top = _top(values, kind)

    def x_of(ts: datetime) -> float:
        return PAD_LEFT + inner_w * min(max((ts - start).total_seconds() / span, 0.0), 1.0)

    def y_of(v: float) -> float:
        return PAD_TOP + inner_h * (1 - v / top)

    coords = [None if p.value is None else (x_of(p.start + (p.end - p.start) / 2), y_of(p.value))
              for p in points]
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(title)}</title>',
             f'<rect class="frame" x="{PAD_LEFT}" y="{PAD_TOP}" width="{inner_w}" height="{inner_h}"/>']
    for v in (0.0, top / 2, top):
        y = y_of(v)
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/><text class="tick" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(fmt(v, kind))}</text>')
    parts.append(f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 6}">{start:%m-%d %H:%M}</text>'
                 f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
                 f'{end:%m-%d %H:%M} UTC</text>')
    for m in marks:
        if start <= m.ts <= end:
            x = x_of(m.ts)
            parts.append(f'<line class="mark mark-{escape(m.kind)}" x1="{x:.1f}" x2="{x:.1f}" '
                         f'y1="{PAD_TOP}" y2="{PAD_TOP + inner_h}"><title>{m.ts:%m-%d %H:%M} '
                         f'{escape(m.label)}</title></line>')
    present = [c for c in coords if c is not None]
    if present:
        parts.append(f'<polyline class="line" points="{_path(present)}"/>')
    for p, c in zip(points, coords, strict=True):
        if c is not None:
            parts.append(f'<circle class="pt" cx="{c[0]:.1f}" cy="{c[1]:.1f}" r="2">'
                         f'<title>{p.start:%m-%d %H:%M}: {escape(fmt(p.value, kind))}</title></circle>')
    if not values:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" '
                     'text-anchor="middle">no calls in this range</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(values: list[float | None], *, label: str) -> Markup:
    """A small line of `values` (equal steps; None is skipped), y from 0 to the largest."""
    n = max(len(values), 1)
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    step = SPARK_W / max(n - 1, 1)
    coords = [None if v is None else (i * step, SPARK_H - 1 - (SPARK_H - 2) * v / top)
              for i, v in enumerate(values)]
    present = [c for c in coords if c is not None]
    lines = f'<polyline points="{_path(present)}"/>' if present else ""
    dots = len(present)
    return Markup(f'<svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" width="{SPARK_W}" '
                  f'height="{SPARK_H}" role="img" aria-label="{escape(label)}" data-points="{dots}" '
                  f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>{lines}</svg>')
