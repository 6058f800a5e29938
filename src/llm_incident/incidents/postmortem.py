"""The postmortem of an incident, compiled from what was measured and done.

- `compile_postmortem(session, incident, *, now) -> Postmortem` gathers it (postmortem_data);
- `render_markdown(pm) -> str` writes it (postmortem_markdown), a pure function;
- `route_charts(session, pm) -> {route: PNG bytes}` draws a chart per impacted route (charts,
  from `postmortem_chart.chart_layout`), the first `MAX_POSTED_CHARTS` unless told otherwise;
- `still_active_mitigations(session, incident)` lists the controls a close should offer to restore.

The domain knows nothing of Slack: adapters post, upload or print what these return.
"""

from __future__ import annotations

from sqlmodel import Session

from llm_incident.incidents.postmortem_chart import (
    CHART_BUCKETS,
    chart_layout,
    chart_markers,
    chart_series,
    chart_window,
)
from llm_incident.incidents.postmortem_data import (
    EVIDENCE_LIMIT,
    compile_postmortem,
    describe_controls,
    freeze_postmortem,
    metrics_scope,
    still_active_mitigations,
)
from llm_incident.incidents.postmortem_markdown import render_markdown
from llm_incident.incidents.postmortem_model import (
    ChartSeries,
    Marker,
    Postmortem,
)

__all__ = [
    "CHART_BUCKETS", "EVIDENCE_LIMIT", "MAX_POSTED_CHARTS", "ChartSeries", "Marker", "Postmortem",
    "chart_layout", "chart_markers", "charted_routes", "chart_series", "chart_window",
    "compile_postmortem", "describe_controls", "freeze_postmortem", "render_markdown",
    "route_charts", "still_active_mitigations",
]


MAX_POSTED_CHARTS = 8  # charts uploaded to a thread; the CLI draws every route


def charted_routes(pm: Postmortem, limit: int | None = MAX_POSTED_CHARTS) -> list[str]:
    """The routes that get a chart: the incident's own first, then those its controls touched."""
    return pm.routes if limit is None else pm.routes[:limit]


def route_charts(session: Session, pm: Postmortem, *, buckets: int = CHART_BUCKETS,
                 limit: int | None = MAX_POSTED_CHARTS) -> dict[str, bytes]:
    """A PNG per charted route (baseline start → close, markers at the start, each mitigation
    and the close), in route order; empty when the incident has no time span yet."""
    from llm_incident.charts import route_chart_png  # matplotlib only when charts are drawn

    window = chart_window(pm)
    if window is None:
        return {}
    scope = metrics_scope(pm.envs)
    out = {}
    for route in charted_routes(pm, limit):
        markers = chart_markers(pm, route)
        series = chart_series(session, route, *window, buckets=buckets, scope=scope,
                              marks=[m.ts for m in markers])
        out[route] = route_chart_png(series, markers)
    return out
