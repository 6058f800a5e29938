"""SDK for the LLM application: report each call as an event (`track`, `EventLogger`).

Imports only the standard library and httpx; starts no thread until the first event is logged.
"""

from llm_incident.client.default import configure, get_logger, shutdown, track
from llm_incident.client.events import EventLogger, LoggerStats
from llm_incident.client.tracking import Call, current_call

__all__ = [
    "Call",
    "EventLogger",
    "LoggerStats",
    "configure",
    "current_call",
    "get_logger",
    "shutdown",
    "track",
]
