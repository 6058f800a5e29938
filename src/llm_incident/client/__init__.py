"""The SDK moved to its own distribution, `llm-incident-client` (import `llm_incident_client`); this
name stays for code written against it, re-exporting the same objects."""

from llm_incident_client import *  # noqa: F401,F403
from llm_incident_client import __all__  # noqa: F401
