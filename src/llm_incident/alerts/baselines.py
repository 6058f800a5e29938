"""The baseline a rule compares with: the first usable link of a chain, and how to say which.

Chain (from the rule's `baseline`): `week` → the same window a week ago, then a day ago, then the
trailing span; `day` → a day ago, then trailing; `trailing` alone; `previous` (the equal-length
window just before) alone. A link is usable with `min_calls` calls and a value. The trailing span
is the `trailing` (3 h) before the window — or before an alert's onset, so a regression never
becomes its own baseline — cut to the route's history, and needs `learn` (1 h) of it: with no
usable link the rule is *learning*.

Baselines are read from the rollups whenever they can answer (`stats_for(path="rollups")`:
counts exact, percentiles within 1 %; a 3 h trailing span of a route at 50 calls/s is 540,000
raw rows, which the rollups answer in milliseconds), else from raw events.

`note` says which link was used and why the ones before it were not, e.g. "vs the last 3 h; no
day-ago data yet".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from llm_incident.alerts.rules import AlertRule
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import Window

CHAINS = {"week": ("week", "day", "trailing"), "day": ("day", "trailing"),
          "trailing": ("trailing",), "previous": ("previous",)}
SHIFTS = {"week": timedelta(days=7), "day": timedelta(days=1)}
LEARNING = "learning"


class Stats(Protocol):
    def get(self, route: str, window: Window, filter_text: str | None, *,
            path: str = "auto") -> WindowStats: ...


@dataclass(frozen=True)
class BaselinePick:
    """The chosen baseline (`kind` None: none usable yet, the rule is learning)."""

    kind: str | None
    window: Window | None
    value: float | None
    calls: int
    note: str


def span_text(span: timedelta) -> str:
    """`3 h`, `2 h 40 min`, `15 min`."""
    minutes = int(span.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    return f"{hours} h" if hours else f"{rest} min"


def _skipped(kind: str, calls: int, min_calls: int) -> str:
    ago = {"week": "week-ago", "day": "day-ago"}.get(kind, kind)
    if calls == 0:
        return f"no {ago} data yet"
    return f"{ago} window has {calls} calls (min {min_calls})"


def trailing_window(rule: AlertRule, window: Window, *, first_seen: datetime | None,
                    anchor: datetime | None = None) -> Window:
    """The trailing span before the window (or before `anchor`), cut to the route's history."""
    end = min(window.start, anchor) if anchor is not None else window.start
    start = end - rule.trailing_span
    if first_seen is not None and first_seen > start:  # from the minute of the first call
        start = min(first_seen.replace(second=0, microsecond=0), end)
    return Window(start, end)


def choose(stats: Stats, rule: AlertRule, route: str, window: Window, *,
           first_seen: datetime | None, anchor: datetime | None = None) -> BaselinePick:
    """The first usable link of the rule's chain for `window` on `route`."""
    skipped: list[str] = []
    for kind in CHAINS[rule.baseline]:
        if kind == "trailing":
            base = trailing_window(rule, window, first_seen=first_seen, anchor=anchor)
            if base.span < rule.learn_span:
                had = span_text(max(base.span, timedelta(0)))
                skipped.append(f"{had} of history before the window (needs {rule.learn})")
                continue
        elif kind == "previous":
            base = Window(window.start - window.span, window.start)
        else:
            base = window.shifted(SHIFTS[kind])
        base_stats = stats.get(route, base, rule.filter, path="rollups")
        value = rule.watched.read(base_stats, rule)
        if base_stats.calls < rule.min_calls or value is None:
            skipped.append(_skipped(kind, base_stats.calls, rule.min_calls)
                           if kind != "trailing" else
                           f"the trailing {span_text(base.span)} have {base_stats.calls} calls "
                           f"(min {rule.min_calls})")
            continue
        return BaselinePick(kind, base, value, base_stats.calls,
                            _note(kind, base, window, anchor, skipped))
    return BaselinePick(None, None, None, 0, f"{LEARNING}: " + "; ".join(skipped))


def _note(kind: str, base: Window, window: Window, anchor: datetime | None,
          skipped: list[str]) -> str:
    if kind == "trailing":
        if anchor is not None and anchor < window.start:
            text = f"vs the {span_text(base.span)} before {anchor:%H:%M}"
        else:
            text = f"vs the last {span_text(base.span)}"
    elif kind == "previous":
        text = f"vs the previous {span_text(window.span)}"
    else:
        text = f"vs the same {span_text(window.span)} a {kind} ago"
    return "; ".join([text, *skipped[-1:]])
