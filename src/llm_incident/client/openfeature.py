"""Moved to `llm_incident_client.openfeature`; this name re-exports it."""

from llm_incident_client.openfeature import *  # noqa: F401,F403
from llm_incident_client.openfeature import ControlsProvider  # noqa: F401
