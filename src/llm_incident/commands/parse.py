"""Parse `/llm-incident` text into typed commands; errors carry the verb's usage line.

Free text (symptoms, status updates, summaries) is kept verbatim: no shell-style quoting, so
quotes, code, emoji and any words pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from llm_incident.commands.command_types import (  # noqa: F401 - callers import them from here
    CHANGE_KINDS,
    Command,
    Help,
    Start,
    Triage,
    Status,
    Routes,
    Metrics,
    MetricsChart,
    ListIncidents,
    Close,
    Reopen,
    ChangeControl,
    ShowControls,
    Attach,
    Note,
    Events,
    Sample,
    Mitigated,
    Alerts,
    RecordChange,
)
from llm_incident.commands.verbs import VERBS
from llm_incident.incidents.models import IncidentClass


_INCIDENT_REF = re.compile(r"#(\d+)$")
_LOOKS_LIKE_TIME = re.compile(r"\d")  # `since 19:37`, `since 30m`, `since 2026-…` (not "since the")
ROUTE_WINDOWS = ("1h", "6h", "24h", "7d", "30d")  # the dashboard's ranges
WINDOW_WORD = re.compile(r"^\d+(?:\.\d+)?[smhdw]$")  # 30m, 1h, 1.5h, 7d


class ParseError(Exception):
    """Bad command text; `usage` is the usage line of the verb (None for an unknown verb)."""

    def __init__(self, message: str, verb: str | None = None) -> None:
        super().__init__(message)
        self.verb = verb

    @property
    def usage(self) -> str | None:
        return f"/llm-incident {VERBS[self.verb][0]}" if self.verb in VERBS else None


CONTROL_VERBS = ("kill", "restore", "clamp", "model", "provider", "retries")
_VALUE_VERBS = {"clamp": "max_tokens", "model": "model", "provider": "provider", "retries": "cap"}
_VERSION = re.compile(r"@v(\d+)$")
AFTER_CLOSE = "after-close"


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
    if verb == "routes":
        window = words.take().lower() if words.peek() else "1h"
        if window not in ROUTE_WINDOWS or words.rest():
            raise ParseError(_not_a_range(window), verb)
        return Routes(window)
    if verb == "start":
        return _parse_start(words, set(known_routes))
    if verb == "triage":
        route = words.take() if words.peek() is not None else None
        if route is None:
            raise ParseError("name a route", verb)
        return Triage(route=route, since=_since(words, verb))
    if verb == "status":
        number = _incident_ref(words)
        if not words.rest():
            raise ParseError("a status update needs text", verb)
        return Status(text=words.rest(), incident=number)
    if verb == "close":
        number = _incident_ref(words)
        return Close(summary=words.rest(), incident=number)
    if verb == "reopen":
        number = _incident_ref(words)
        return Reopen(reason=words.rest(), incident=number)
    if verb == "mitigated":
        number = _incident_ref(words)
        return Mitigated(note=words.rest(), incident=number)
    if verb in CONTROL_VERBS:
        return _parse_control(verb, words)
    if verb == "attach":
        return _parse_attach(words)
    if verb == "note":
        number = _incident_ref(words)
        if words.peek() is None:
            raise ParseError("which event?", verb)
        event_id = words.take()
        return Note(event_id, words.rest(), number, form=not words.rest())
    if verb == "events":
        return _parse_events(words)
    if verb == "sample":
        return _parse_sample(words)
    if verb == "alerts":
        return _parse_alerts(words)
    if verb == "change":
        return _parse_change(words)
    if verb == "controls":
        route = words.take() if words.peek() else None
        if words.rest():
            raise ParseError("`controls` takes at most one route", verb)
        return ShowControls(route)
    # metrics
    if words.peek() is None:
        raise ParseError("which route?", verb)
    if (chart := _parse_chart(words.rest())) is not None:
        return chart
    route = words.take()
    window = words.take().lower() if words.peek() else "30m"
    if not WINDOW_WORD.match(window) or words.rest():
        raise ParseError(f"`{window}` is not a window; use e.g. 30m, 1h, 24h, 7d", verb)
    return Metrics(route=route, window=window)


def _not_a_range(word: str) -> str:
    return f"`{word}` is not a range; use {', '.join(ROUTE_WINDOWS)}"


_CHART = re.compile(r"^(?P<route>.+?)\s+(?:(?P<before>\S+)\s+)?chart(?:\s+(?P<after>\S+))?$",
                    re.IGNORECASE | re.DOTALL)


def _parse_chart(text: str) -> MetricsChart | None:
    """`<route> chart [range]` (or `<route> <range> chart`); the route is every word before
    (spaces allowed). None when the text is no chart request."""
    m = _CHART.match(text)
    if m is None:
        return None
    route, before, after = m.group("route"), m.group("before"), m.group("after")
    if before and after:  # `a b chart 24h`: `b` is part of the route
        route, before = f"{route} {before}", None
    if before and before.lower() not in ROUTE_WINDOWS:
        route, before = f"{route} {before}", None
    window = (after or before or "1h").lower()
    if window not in ROUTE_WINDOWS:
        raise ParseError(_not_a_range(window) + " (e.g. `metrics <route> chart 24h`)", "metrics")
    return MetricsChart(route=route.strip(), window=window)


def _parse_alerts(words: _Words) -> Alerts:
    if words.peek() is None:
        return Alerts()
    if words.take().lower() != "start" or not re.fullmatch(r"\d+", words.rest()):
        raise ParseError("write `alerts` or `alerts start <alert id>` (the id is on the alert)",
                         "alerts")
    return Alerts(start=int(words.rest()))


def _parse_change(words: _Words) -> RecordChange:
    if words.peek() is None:
        raise ParseError("which route?", "change")
    route = words.take()
    kind = "other"
    if (word := words.peek()) is not None and word.lower() in CHANGE_KINDS:
        kind = words.take().lower()
    if not words.rest():
        raise ParseError("say what changed, e.g. `change support.reply prompt v14 shipped`",
                         "change")
    return RecordChange(route=route, kind=kind, text=words.rest())


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
    since = _since(words, "start")
    symptom = words.rest()
    suspicious = tuple(w for w in symptom.split()[:3] if _looks_like_route(w) and w not in known)
    return Start(routes=tuple(routes), incident_class=incident_class, symptom=symptom,
                 unknown_route_like=suspicious, since=since)


def _since(words: _Words, verb: str) -> str | None:
    """`since <when>` at this point of the words, if there; `since` followed by a word that is
    no time ("since the deploy …") is left to the symptom."""
    if (words.peek() or "").lower() != "since":
        return None
    after = _Words(words.text, words.pos)
    after.take()
    when = after.peek()
    if when is None:
        raise ParseError("`since` needs a time: 19:37 (UTC), 30m (ago) or 2026-12-02T19:37Z",
                         verb)
    if not _LOOKS_LIKE_TIME.match(when):
        return None
    words.take()
    return words.take()


def _parse_control(verb: str, words: _Words) -> ChangeControl:
    """`<verb> <route> [value] [@vN] [for <duration>]` (the version guard comes from buttons)."""
    if words.peek() is None:
        raise ParseError("which route?", verb)
    route = words.take()
    args = words.rest().split()
    after_close = bool(args) and args[-1] == AFTER_CLOSE
    if after_close:
        args.pop()
    version = None
    if args and (m := _VERSION.match(args[-1])):
        version = int(m.group(1))
        args.pop()
    duration = None
    if len(args) >= 2 and args[-2].lower() == "for":
        duration = args[-1].lower()
        if not WINDOW_WORD.match(duration):
            raise ParseError(f"`{args[-1]}` is not a duration; use e.g. 30m, 2h, 1d", verb)
        args = args[:-2]
    if verb in ("kill", "restore"):
        if args:
            raise ParseError(f"unexpected `{' '.join(args)}`", verb)
        if verb == "restore" and duration:
            raise ParseError("restore is permanent; `for` applies to kill, clamp, model…", verb)
        return ChangeControl(verb, route, duration=duration, expected_version=version,
                             after_close=after_close)
    if not args:
        return ChangeControl(verb, route, duration=duration, expected_version=version, form=True)
    if len(args) > 1:
        raise ParseError(f"give one {_VALUE_VERBS[verb]}, not `{' '.join(args)}`", verb)
    value: str | int = args[0]
    if value.lower() == "off":
        value = "off"
    elif verb in ("clamp", "retries"):
        if not value.isdigit():
            raise ParseError(f"`{value}` is not a whole number", verb)
        value = int(value)
    return ChangeControl(verb, route, value=value, duration=duration, expected_version=version)


LABELS = ("good", "bad", "none")
_LIMIT = re.compile(r"\s+limit\s+(\d+)\s*$", re.IGNORECASE)


def _parse_attach(words: _Words) -> Attach:
    """Event ids up to a `good`/`bad` word; the words after the label are the note."""
    number = _incident_ref(words)
    ids: list[str] = []
    while (word := words.peek()) is not None and word.lower() not in LABELS:
        ids.append(words.take())
    if not ids:
        raise ParseError("which event ids?", "attach")
    label = words.take().lower() if words.peek() else None
    return Attach(tuple(ids), None if label == "none" else label, words.rest(), number)


def _parse_events(words: _Words) -> Events:
    text = words.rest()
    limit = 10
    if m := _LIMIT.search(text):
        limit, text = int(m.group(1)), text[: m.start()]
    if not text.strip():
        raise ParseError("give a filter, e.g. `events status = \"flagged\" limit 10`", "events")
    if not 1 <= limit <= 20:
        raise ParseError("limit is 1–20 (Slack shows at most 20 events with buttons)", "events")
    return Events(text.strip(), limit)


def _parse_sample(words: _Words) -> Sample:
    if words.peek() is None:
        raise ParseError("which route?", "sample")
    route = words.take()
    n = 20
    if (word := words.peek()) is not None and word.isdigit():
        n = int(words.take())
        if not 1 <= n <= 30:
            raise ParseError("a sample is 1–30 events", "sample")
    return Sample(route, n, words.rest())
