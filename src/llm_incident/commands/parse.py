"""Parse `/llm-incident` text into typed commands; errors carry the verb's usage line.

Free text (symptoms, status updates, summaries) is kept verbatim: no shell-style quoting, so
quotes, code, emoji and any words pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from llm_incident.incidents.models import IncidentClass

# verb → (usage, what it does); `help` lists them in this order.
VERBS: dict[str, tuple[str, str]] = {
    "start": ("start [routes…] [quality|latency|cost|provider] [symptom]",
              "open an incident (no arguments: a form)"),
    "status": ("status [#N] <text>", "post a status update to the incident thread"),
    "metrics": ("metrics <route> [window]", "baseline vs now for a route (window: 30m, 1h, 24h…)"),
    "list": ("list", "show open incidents"),
    "close": ("close [#N] [summary]", "close the incident and post its timeline"),
    "help": ("help", "this list"),
}

_INCIDENT_REF = re.compile(r"#(\d+)$")
_WINDOW = re.compile(r"^\d+(?:\.\d+)?[smhdw]$")


class ParseError(Exception):
    """Bad command text; `usage` is the usage line of the verb (None for an unknown verb)."""

    def __init__(self, message: str, verb: str | None = None) -> None:
        super().__init__(message)
        self.verb = verb

    @property
    def usage(self) -> str | None:
        return f"/llm-incident {VERBS[self.verb][0]}" if self.verb in VERBS else None


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


@dataclass(frozen=True)
class Status:
    text: str
    incident: int | None = None


@dataclass(frozen=True)
class Metrics:
    route: str
    window: str = "30m"


@dataclass(frozen=True)
class ListIncidents:
    pass


@dataclass(frozen=True)
class Close:
    summary: str = ""
    incident: int | None = None


Command = Help | Start | Status | Metrics | ListIncidents | Close


@dataclass
class _Words:
    """The text after the verb, consumed word by word; `rest` keeps original spacing."""

    text: str
    pos: int = 0
    taken: list[str] = field(default_factory=list)

    def peek(self) -> str | None:
        match = re.compile(r"\s*(\S+)").match(self.text, self.pos)
        return match.group(1) if match else None

    def take(self) -> str:
        match = re.compile(r"\s*(\S+)").match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()
        return match.group(1)

    def rest(self) -> str:
        return self.text[self.pos :].strip()


def _incident_ref(words: _Words) -> int | None:
    word = words.peek()
    if word and (m := _INCIDENT_REF.match(word)):
        words.take()
        return int(m.group(1))
    return None


def _looks_like_route(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+(?:[./:][A-Za-z0-9_-]+)+", word))


def parse_command(text: str, *, known_routes: Collection[str] = ()) -> Command:
    """Parse command text (without the `/llm-incident` prefix)."""
    words = _Words(text.strip())
    if words.peek() is None:
        return Help()
    verb = words.take().lower()
    if verb not in VERBS:
        raise ParseError(f"unknown command `{verb}`; `/llm-incident help` lists them all")
    if verb == "help":
        return Help()
    if verb == "list":
        return ListIncidents()
    if verb == "start":
        return _parse_start(words, set(known_routes))
    if verb == "status":
        number = _incident_ref(words)
        if not words.rest():
            raise ParseError("a status update needs text", verb)
        return Status(text=words.rest(), incident=number)
    if verb == "close":
        number = _incident_ref(words)
        return Close(summary=words.rest(), incident=number)
    # metrics
    if words.peek() is None:
        raise ParseError("which route?", verb)
    route = words.take()
    window = words.take().lower() if words.peek() else "30m"
    if not _WINDOW.match(window) or words.rest():
        raise ParseError(f"`{window}` is not a window; use e.g. 30m, 1h, 24h, 7d", verb)
    return Metrics(route=route, window=window)


def _parse_start(words: _Words, known: set[str]) -> Start:
    if words.peek() is None:
        return Start(form=True)
    routes: list[str] = []
    while (word := words.peek()) is not None and word in known and word not in routes:
        routes.append(words.take())
    incident_class = IncidentClass.unknown
    word = words.peek()
    if word and word.lower() in {c.value for c in IncidentClass}:
        incident_class = IncidentClass(words.take().lower())
    symptom = words.rest()
    suspicious = tuple(w for w in symptom.split()[:3] if _looks_like_route(w) and w not in known)
    return Start(routes=tuple(routes), incident_class=incident_class, symptom=symptom,
                 unknown_route_like=suspicious)
