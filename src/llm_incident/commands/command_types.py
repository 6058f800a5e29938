"""The commands `parse_command` returns: one frozen dataclass per verb, and `Command`, their union."""

from __future__ import annotations

from dataclasses import dataclass

from llm_incident.incidents.models import IncidentClass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Start:
    routes: tuple[str, ...] = ()
    incident_class: IncidentClass = IncidentClass.unknown
    symptom: str = ""
    unknown_route_like: tuple[str, ...] = ()  # words that look like routes but are not known
    form: bool = False  # no arguments: ask with a form
    since: str | None = None  # when it began, as typed (`since_time` reads it)


@dataclass(frozen=True)
class Triage:
    route: str
    since: str | None = None


@dataclass(frozen=True)
class Status:
    text: str
    incident: int | None = None


@dataclass(frozen=True)
class Routes:
    window: str = "1h"


@dataclass(frozen=True)
class Metrics:
    route: str
    window: str = "30m"


@dataclass(frozen=True)
class MetricsChart:
    """`metrics <route> chart [range]`: the route's charts over a dashboard range, as an image."""

    route: str
    window: str = "1h"


@dataclass(frozen=True)
class ListIncidents:
    pass


@dataclass(frozen=True)
class Close:
    summary: str = ""
    incident: int | None = None


@dataclass(frozen=True)
class Reopen:
    reason: str = ""
    incident: int | None = None


@dataclass(frozen=True)
class ChangeControl:
    """kill / restore / clamp / model / provider / retries. `value` None with `form` → ask."""

    verb: str
    route: str
    value: str | int | None = None
    duration: str | None = None
    expected_version: int | None = None
    form: bool = False
    after_close: bool = False  # a closed incident's postmortem Restore button (`@vN after-close`)


@dataclass(frozen=True)
class ShowControls:
    route: str | None = None


@dataclass(frozen=True)
class Attach:
    event_ids: tuple[str, ...]
    label: str | None = None
    note: str = ""
    incident: int | None = None


@dataclass(frozen=True)
class Note:
    event_id: str
    text: str = ""
    incident: int | None = None
    form: bool = False


@dataclass(frozen=True)
class Events:
    filter_text: str
    limit: int = 10


@dataclass(frozen=True)
class Sample:
    route: str
    n: int = 20
    filter_text: str = ""


@dataclass(frozen=True)
class Mitigated:
    note: str = ""
    incident: int | None = None


@dataclass(frozen=True)
class Alerts:
    start: int | None = None  # an alert id: start an incident from it


@dataclass(frozen=True)
class RecordChange:
    route: str
    kind: str
    text: str


CHANGE_KINDS = ("deploy", "prompt", "model", "config", "other")

Command = (Help | Start | Triage | Status | Metrics | MetricsChart | Routes | ListIncidents | Close | Reopen
           | ChangeControl | ShowControls | Attach | Note | Events | Sample | Alerts | RecordChange
           | Mitigated)
