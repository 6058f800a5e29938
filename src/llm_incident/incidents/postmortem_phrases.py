"""Sentences for control decisions in a postmortem: one grammar for every combination of fields.

- a change that sets values: `clamped max_tokens to 800 and capped retries at 1 on `r``;
- a change that takes values back: `removed the token clamp and the retry cap on `r``;
- a kill or a re-enable names the route first: `killed `r`; also clamped max_tokens to 800`;
- another env than prod follows the route: `on `r` in staging`;
- a restore of every control: `restored `r` to its default controls: lifted the kill and removed
  the token clamp`;
- an expiry: `the kill and token clamp on `r` expired`, shown at the time it was due.

Times are UTC and to the minute (`when`); an expiry is shown at its due time everywhere, so one
expiry has one time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from llm_incident.controls.values import DEFAULTS, FIELDS
from llm_incident.incidents.postmortem_model import Decision

NOUNS = {"enabled": "kill", "max_tokens": "token clamp", "model": "model override",
         "provider": "provider override", "retry_cap": "retry cap",
         "fallback_message": "fallback message"}


def when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def span(value: timedelta) -> str:
    """The one duration format: `45s`, `12m 5s`, `1h 5m`, `2d 3h 0m` (seconds under an hour)."""
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if not (days or hours):
        return f"{minutes}m" + (f" {secs}s" if secs else "")
    out = [f"{days}d"] * bool(days) + [f"{hours}h", f"{minutes}m"]
    return " ".join(out)


def value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def join_and(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _set(name: str, v: Any) -> str:
    if name == "max_tokens":
        return f"clamped max_tokens to {v:,}"
    if name in ("model", "provider"):
        return f"switched the {name} to {v}"
    if name == "retry_cap":
        return f"capped retries at {v}"
    if name == "fallback_message":
        return "set the fallback message"
    return f"set {name} to {value(v)}"


def _is_default(name: str, v: Any) -> bool:
    return name in DEFAULTS and v == DEFAULTS[name]


def _route(d: Decision) -> str:
    return f"`{d.route}`" + ("" if d.env == "prod" else f" in {d.env}")


def _removals(names: list[str]) -> list[str]:
    """`lifted the kill`, `removed the token clamp and the retry cap`."""
    out = ["lifted the kill"] if "enabled" in names else []
    rest = [f"the {NOUNS.get(n, n)}" for n in names if n != "enabled"]
    return out + ([f"removed {join_and(rest)}"] if rest else [])


def change_sentence(d: Decision) -> str:
    """What a person's (or script's) change did, without who and when."""
    route = _route(d)
    names = [n for n in FIELDS if n in d.changed] + [n for n in d.changed if n not in FIELDS]
    cleared = [n for n in names if _is_default(n, d.after[n])]
    if cleared and len(cleared) == len(names) and set(FIELDS) <= set(d.after):
        return f"restored {route} to its default controls: {join_and(_removals(cleared))}"
    kill = "enabled" in names and d.after["enabled"] is False
    phrases = [_set(n, d.after[n]) for n in names if n not in cleared and n != "enabled"]
    phrases += _removals([n for n in cleared if n != "enabled"])
    if "enabled" in names:
        head = f"{'killed' if kill else 're-enabled'} {route}"
        return head + (f"; also {join_and(phrases)}" if phrases else "")
    return f"{join_and(phrases)} on {route}"


def expiry_sentence(d: Decision) -> str:
    """What ran out: the controls the expiry took back, and what is in force now if not defaults."""
    names = [n for n in FIELDS if n in d.changed]
    ended = join_and([NOUNS[n] for n in names]) or "temporary change"
    kept = [f"{n} {value(d.after[n])}" for n in names if not _is_default(n, d.after[n])]
    return (f"the {ended} on {_route(d)} expired"
            + (f" (back to {', '.join(kept)})" if kept else ""))


def due_at(d: Decision, decisions: list[Decision]) -> datetime:
    """When an expiry was due (the latest expiry it reverted; its own time for anything else)."""
    if d.kind != "expiry":
        return d.ts
    due = [c.expires_at for c in decisions if c.kind == "change" and c.applied
           and (c.route, c.env) == (d.route, d.env) and c.expires_at is not None
           and c.expires_at <= d.ts]
    return max(due) if due else d.ts


def action_text(d: Decision) -> str:
    """`@U2 clamped max_tokens to 800 on `support.reply` (until …)`; an expiry has no actor."""
    if d.kind == "expiry":
        return expiry_sentence(d)
    until = f" (until {when(d.expires_at)})" if d.expires_at else ""
    return f"@{d.actor} {change_sentence(d)}{until}"


def change_text(before: dict[str, Any], after: dict[str, Any]) -> str:
    """`enabled: true → false; max_tokens: none → 800` over the fields that changed (all
    requested fields when none did)."""
    names = [k for k in after if before.get(k) != after[k]] or list(after)
    return "; ".join(f"{k}: {value(before.get(k))} → {value(after[k])}" for k in names)
