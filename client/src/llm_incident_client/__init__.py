"""SDK for the LLM application: report each call as an event (`track`, `EventLogger`) and obey the route
controls (`Controls`, `Decision`).

Its own distribution, `llm-incident-client`: it needs only httpx (and installs nothing of the server).
Imports only the standard library and httpx; starts no thread until an event is logged or a `Controls` is
created. The OpenFeature provider lives in `llm_incident_client.openfeature` (extra `openfeature`).
"""

from llm_incident_client._version import __version__

from llm_incident_client.controls import Controls
from llm_incident_client.decision import Decision
from llm_incident_client.default import configure, get_logger, shutdown, track
from llm_incident_client.events import EventLogger, LoggerStats
from llm_incident_client.tracking import Call, current_call

__all__ = [
    "__version__",
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
