"""The postmortem of an incident, compiled from what was measured and done.

- `compile_postmortem(session, incident, *, now) -> Postmortem` gathers it (postmortem_data);
- `render_markdown(pm) -> str` writes it (postmortem_markdown), a pure function;
- `route_charts(session, pm) -> {route: PNG bytes}` draws one chart per impacted route (charts);
- `still_active_mitigations(session, incident)` lists the controls a close should offer to restore.

The domain knows nothing of Slack: adapters post, upload or print what these return.
"""

from __future__ import annotations

from sqlmodel import Session

from llm_incident.incidents.postmortem_data import (
    CHART_BUCKETS,
    EVIDENCE_LIMIT,
    chart_markers,
    chart_series,
    chart_window,
    compile_postmortem,
    describe_controls,
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
    "CHART_BUCKETS", "EVIDENCE_LIMIT", "ChartSeries", "Marker", "Postmortem", "chart_markers",
    "chart_series", "chart_window", "compile_postmortem", "describe_controls", "render_markdown",
    "route_charts", "still_active_mitigations",
]


def route_charts(session: Session, pm: Postmortem, *, buckets: int = CHART_BUCKETS
                 ) -> dict[str, bytes]:
    """A PNG per impacted route (baseline start → close, markers at the start, each mitigation
    and the close), in route order; empty when the incident has no time span yet."""
    from llm_incident.charts import route_chart_png  # matplotlib only when charts are drawn

    window = chart_window(pm)
    if window is None:
        return {}
    scope = metrics_scope(pm.envs)
    return {route: route_chart_png(chart_series(session, route, *window, buckets=buckets,
                                                scope=scope), chart_markers(pm, route))
            for route in pm.routes}
