"""Likely cause: the change-log entries of the affected routes near the onset, ranked.

A change's score adds (deterministic; ties → closer, then newer, then lower id):

- closeness: `exp(-minutes before the onset / CLOSENESS_MINUTES)`; a change recorded after the
  onset (clock skew, a late `change` command) counts up to `AFTER_ONSET` and weighs half;
- agreement with the attribution, for the best-agreeing attribution that explains the excess:
  `NAMES_VALUE` when the change's ref or description names the attributed value (prompt version
  `42` is named by "v42" or "42"; a model by its full name), else `KIND_MATCH` when the change's
  kind is the attributed dimension's (prompt → prompt_version / prompt_id, model → model /
  provider; deploy and config changes half that for any dimension) — scaled by the attribution's
  strength (its score over 0.5, at most 1);
- `SAME_ROUTE` when the change is on the incident's main route (the first of `routes`); on
  another affected route the agreement weighs `OTHER_ROUTE` (the attribution is the main route's).

No change in the window → an empty list; `NO_CHANGE` is what to say then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from llm_incident.changes import Change, recent_changes
from llm_incident.triage.attribution import aware_utc
from llm_incident.triage.ranking import Attribution, explaining

NO_CHANGE = "no recorded change near the onset"
CLOSENESS_MINUTES = 30.0
AFTER_ONSET = timedelta(minutes=5)
NAMES_VALUE, KIND_MATCH, SAME_ROUTE = 2.0, 1.0, 0.25
OTHER_ROUTE = 0.5  # the attribution is the main route's: agreement elsewhere weighs half
# change kind → the attribution dimensions it agrees with (full weight)
KIND_DIMENSIONS = {
    "prompt": ("prompt_version", "prompt_id"),
    "model": ("model", "provider"),
}
LOOSE_KINDS = ("deploy", "config")  # may change anything: half the kind weight
_WORD = r"A-Za-z0-9_\-"


@dataclass
class Cause:
    """One change-log entry and why it ranks where it does."""

    change_id: int | None
    route: str
    kind: str
    description: str
    ref: str | None
    author: str | None
    ts: datetime
    minutes_before_onset: float  # negative: recorded after the onset
    agrees_with: str | None  # the attribution's label, e.g. "prompt_version 42"
    names_value: bool
    score: float

    def text(self) -> str:
        """E.g. "prompt change on support.reply at 19:37 (2 min before the onset): … (ref v42)
        — names prompt_version 42"."""
        when = _when(self.minutes_before_onset)
        ref = f" (ref {self.ref})" if self.ref else ""
        line = (f"{self.kind} change on {self.route} at {self.ts:%H:%M} ({when}): "
                f"{self.description}{ref}")
        if self.agrees_with:
            line += f" — {'names' if self.names_value else 'matches'} {self.agrees_with}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id, "route": self.route, "kind": self.kind,
            "description": self.description, "ref": self.ref, "author": self.author,
            "ts": self.ts.isoformat(), "minutes_before_onset": self.minutes_before_onset,
            "agrees_with": self.agrees_with, "names_value": self.names_value,
            "score": self.score, "text": self.text(),
        }


def _when(minutes: float) -> str:
    if abs(minutes) < 0.5:
        return "at the onset"
    side = "before" if minutes > 0 else "after"
    return f"{abs(minutes):.0f} min {side} the onset"


def names(text: str, value: str) -> bool:
    """Whether `text` names `value` as a whole word (a version also as `v<value>`)."""
    if not value or value == "unknown":
        return False
    bare = value[1:] if value[:1] in "vV" and value[1:].isdigit() else value
    pattern = (rf"(?<![{_WORD}.])(?:[vV])?{re.escape(bare)}"
               rf"(?![{_WORD}]|\.[A-Za-z0-9])")
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _agreement(change: Change, attributions: Sequence[Attribution]
               ) -> tuple[float, Attribution | None, bool]:
    """(points, the attribution agreed with, whether the change names its value)."""
    text = f"{change.ref or ''} {change.description}"
    best: tuple[float, Attribution | None, bool] = (0.0, None, False)
    for attribution in attributions:
        strength = min(1.0, attribution.score / 0.5)
        kind_dims = KIND_DIMENSIONS.get(change.kind, ())
        if names(text, attribution.value):
            points, named = NAMES_VALUE * strength, True
        elif attribution.dimension in kind_dims:
            points, named = KIND_MATCH * strength, False
        elif change.kind in LOOSE_KINDS:
            points, named = KIND_MATCH * strength / 2, False
        else:
            continue
        if points > best[0]:
            best = (points, attribution, named)
    return best


def _closeness(minutes_before: float) -> float:
    if minutes_before >= 0:
        return math.exp(-minutes_before / CLOSENESS_MINUTES)
    return 0.5 * math.exp(minutes_before / CLOSENESS_MINUTES)


def likely_causes(session: Session, routes: Sequence[str], *, onset: datetime,
                  attributions: Sequence[Attribution] = (),
                  window: timedelta = timedelta(hours=2), limit: int = 5) -> list[Cause]:
    """Changes of `routes` from `window` before the onset to `AFTER_ONSET` after it, most likely
    first (see the module docstring); [] when there is none."""
    if not routes:
        return []
    onset = aware_utc(onset)
    changes = recent_changes(session, list(routes), until=onset + AFTER_ONSET,
                             lookback=window + AFTER_ONSET)
    explained = explaining(attributions)
    causes = []
    for change in changes:
        ts = aware_utc(change.ts)
        minutes = (onset - ts).total_seconds() / 60
        points, agreed, named = _agreement(change, explained)
        same = change.route == routes[0]
        score = _closeness(minutes) + (points + SAME_ROUTE if same else points * OTHER_ROUTE)
        causes.append(Cause(
            change_id=change.id, route=change.route, kind=change.kind,
            description=change.description, ref=change.ref, author=change.author, ts=ts,
            minutes_before_onset=round(minutes, 1), agrees_with=agreed.label if agreed else None,
            names_value=named, score=round(score, 6),
        ))
    causes.sort(key=lambda c: (-c.score, abs(c.minutes_before_onset), -c.ts.timestamp(),
                               c.change_id or 0))
    return causes[:limit]
