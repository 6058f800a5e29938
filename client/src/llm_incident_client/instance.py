"""Who this client is and what it has applied: the report a `Controls` sends with each long-poll.

The control plane keeps one row per instance (`GET /v1/instances`) and tells an incident's thread how many
instances applied a change and how fast. The report is one request header, `X-LLM-Incident-Instance`, a
URL-encoded form:

    id=3f2a…&name=web-7&host=web-7&pid=4242&version=0.1.0&wait=25&route=support.reply&applied=support.reply@7@0.012

`route` (repeated): the routes this instance guards (watched or passed to `guard()`); `applied` (repeated):
`<route>@<version>@<seconds since this instance loaded that version>` — an age, not a time, so clocks that
disagree do not matter.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from llm_incident_client._version import __version__

__all__ = ["HEADER", "MAX_REPORTED_ROUTES", "Identity", "report_header"]

HEADER = "X-LLM-Incident-Instance"
MAX_REPORTED_ROUTES = 50  # a header stays small; the server ignores more
_MAX_NAME = 100


@dataclass(frozen=True)
class Identity:
    """An instance id (random per `Controls`), the name shown to responders, host, pid, package version."""

    id: str
    name: str
    host: str
    pid: int
    version: str = __version__

    @classmethod
    def create(cls, name: str | None = None) -> Identity:
        """A fresh identity; `name` defaults to the host name (as in "web-7 last seen 14:02")."""
        try:
            host = socket.gethostname() or "unknown"
        except OSError:
            host = "unknown"
        shown = (name or host).strip()[:_MAX_NAME] or host
        return cls(id=uuid.uuid4().hex, name=shown, host=host[:_MAX_NAME], pid=os.getpid())


def report_header(identity: Identity, *, wait: float, routes: list[str],
                  applied: dict[str, tuple[int, float]]) -> str:
    """The header value: identity, long-poll wait, guarded routes and (version, age in s) per route."""
    pairs: list[tuple[str, str]] = [
        ("id", identity.id), ("name", identity.name), ("host", identity.host), ("pid", str(identity.pid)),
        ("version", identity.version), ("wait", f"{wait:g}")]
    shown = routes[:MAX_REPORTED_ROUTES]
    pairs += [("route", route) for route in shown]
    pairs += [("applied", f"{route}@{version}@{max(age, 0.0):.3f}")
              for route, (version, age) in applied.items() if route in shown]
    return urlencode(pairs)
