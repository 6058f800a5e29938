"""`metrics <route> chart [range]`: the dashboard route page's charts as one PNG in the channel.

The numbers are the route page's (`dashboard.series.route_series` over the range's buckets, the
marks of `route_page.route_marks`); the drawing is `charts.range_chart_png`. The command posts a
`route_chart` attachment through the outbox (`chart_post`); the PNG is drawn at delivery from
its args (`render_chart`), for the range ending at the request's time, so a retry sends the
same image.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from llm_incident.commands.links import NO_LINKS, DashboardLinks, link
from llm_incident.commands.replies import Attachment, Post, Reply, Target
from llm_incident.dashboard.ranges import RANGES
from llm_incident.dashboard.route_page import route_marks
from llm_incident.dashboard.series import CHARTED, points, route_series
from llm_incident.metrics.compare import compare_windows, fmt
from llm_incident.metrics.windows import window_ending

ROUTE_CHART = "route_chart"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def chart_filename(route: str, window: str) -> str:
    """A file name safe anywhere: the route's letters, digits and `._-`, the range."""
    return f"{_UNSAFE.sub('_', route).strip('_')[:80] or 'route'}-{window}.png"


def chart_post(session: Session, route: str, window: str, *, channel: str,
               thread_ts: str | None, now: datetime, request_key: str | None,
               links: DashboardLinks = NO_LINKS) -> Post:
    """The outbox post: the chart, with the range's headline numbers as its comment."""
    comparison = compare_windows(session, route, now=now,
                                 window=window_ending(now, RANGES[window].span))
    stats = comparison.now
    hours = RANGES[window].span.total_seconds() / 3600
    cost = None if stats.total_cost_usd is None else stats.total_cost_usd / hours
    text = (f"{route} over the last {window}: {stats.calls:,} calls · flagged rate "
            f"{fmt(stats.flagged_rate, 'rate')} · p95 duration {fmt(stats.p95_duration_ms, 'ms')}"
            f" · p95 tokens_out {fmt(stats.p95_tokens_out, 'count')} · cost / hour "
            f"{fmt(cost, 'usd')}")
    if (url := links.route(route, window)) is not None:
        text += f" · {link(url, 'dashboard')}"
    attachment = Attachment(chart_filename(route, window), f"{route} — last {window}",
                            ROUTE_CHART, args=(("route", route), ("range", window),
                                               ("as_of", now.isoformat())))
    key = f"chart:{request_key or uuid.uuid4().hex}"
    return Post(None, Target.channel, Reply(text=text, ephemeral=False), key=key,
                attachments=(attachment,), channel=channel, thread_ts=thread_ts)


def render_chart(session: Session, args: dict[str, str]) -> bytes:
    """The PNG a `route_chart` attachment asks for (its args: route, range, as_of)."""
    from llm_incident.charts import RangeMark, RangePanel, range_chart_png  # matplotlib here only

    route, rng = args["route"], RANGES[args["range"]]
    as_of = datetime.fromisoformat(args["as_of"])
    edges = rng.edges(as_of)
    buckets = route_series(session, route, edges, now=as_of)  # as the route page reads them
    panels = []
    for stat, title, kind in CHARTED:
        pts = points(buckets, stat)
        panels.append(RangePanel(stat, title, kind, [p.start for p in pts],
                                 [p.end for p in pts], [p.value for p in pts]))
    window = rng.window(as_of)
    marks = [RangeMark(m.ts, m.label, m.kind) for m in route_marks(session, route, window)]
    minutes = rng.bucket.total_seconds() / 60
    bucket = f"{minutes:g}-minute" if minutes < 60 else f"{minutes / 60:g}-hour"
    title = (f"{route} — last {rng.name} to {window.end:%Y-%m-%d %H:%M} UTC, {bucket} buckets")
    return range_chart_png(title, panels, marks, start=window.start, end=window.end)
