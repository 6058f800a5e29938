"""SDK for the LLM application: report each call as an event (`track`, `EventLogger`) and obey the route
controls (`Controls`, `Decision`).

Imports only the standard library and httpx; starts no thread until an event is logged or a `Controls` is
created. The OpenFeature provider lives in `llm_incident.client.openfeature` (needs `openfeature-sdk`).
"""

from llm_incident.client.controls import Controls
from llm_incident.client.decision import Decision
from llm_incident.client.default import configure, get_logger, shutdown, track
from llm_incident.client.events import EventLogger, LoggerStats
from llm_incident.client.tracking import Call, current_call

__all__ = [
    "Call",
    "Controls",
    "Decision",
    "EventLogger",
    "LoggerStats",
    "configure",
    "current_call",
    "get_logger",
    "shutdown",
    "track",
]
