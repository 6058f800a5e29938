"""Suggested mitigations with numbers, each one `/llm-incident` command away (or a rollback text).

Per class, in the order of the runbook's checklists (`ORDER`); a suggestion is offered when:

- clamp — p95 tokens_out rose: `clamp <route> N`, N = the pre-onset p99 tokens_out rounded up
  (`round_up`: to the next 100 below 1,000, 500 below 10,000, else 1,000);
- model / provider — an alternative is healthy in the same window (`Alternatives`, read by
  `alternatives()`): the route's own pre-onset model (provider) first, else the busiest healthy
  one; offered when the attribution names a model (provider), or when duration or cost (provider:
  duration or errors) rose and the best explanation is not a prompt (the rollback fixes that);
- retries — the retry share rose (a shift, or `RETRY_RISE` over the baseline): `retries <route> 1`;
- kill — the flagged rate since the onset passed `KILL_FLAGGED_RATE` (below it before, or
  risen by `KILL_RISE` since);
- rollback — the attribution names a prompt version: roll back to the pre-onset version, citing
  the change-log entry (its ref) when one ranks as cause; no verb (the bot cannot deploy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from llm_incident.metrics.scope import C, IS_ERROR, event_conditions
from llm_incident.metrics.stats import WindowStats
from llm_incident.triage.ranking import Attribution, explaining
from llm_incident.triage.cause import Cause
from llm_incident.triage.frame import DIMENSIONS, ERROR, CallFrame
from llm_incident.triage.times import micros

KILL_FLAGGED_RATE = 0.10
KILL_RISE = 0.02  # above the threshold before too: it must have risen this much (2 pts)
RETRY_RISE = 0.05  # retry share up this much (absolute) counts as risen without a shift
HEALTHY_MAX_ERROR_RATE = 0.05
HEALTHY_MIN_CALLS = 20
HEALTHY_MAX_SLOWDOWN = 1.25  # avg duration since the onset vs before, at most
HEALTH_SPAN = timedelta(hours=1)  # health and the route's mix: this far either side of the onset
ORDER = {
    "quality": ("kill", "rollback", "model", "clamp", "retries", "provider"),
    "latency": ("model", "provider", "clamp", "retries", "rollback", "kill"),
    "cost": ("clamp", "model", "rollback", "retries", "provider", "kill"),
    "provider": ("retries", "provider", "model", "kill", "clamp", "rollback"),
    "unknown": ("kill", "rollback", "clamp", "retries", "model", "provider"),
}
PREFIX = "/llm-incident"


@dataclass(frozen=True)
class Suggestion:
    """One mitigation; `verb`/`command` None when the bot cannot do it (a rollback)."""

    kind: str  # clamp | model | provider | retries | kill | rollback
    route: str
    text: str
    verb: str | None = None
    value: str | int | None = None

    @property
    def command(self) -> str | None:
        if self.verb is None:
            return None
        value = "" if self.value is None else f" {self.value}"
        return f"{PREFIX} {self.verb} {self.route}{value}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "verb": self.verb, "route": self.route, "value": self.value,
                "text": self.text, "command": self.command}


@dataclass
class Health:
    """A model's or provider's calls, errors and average duration since the onset (all routes),
    and its average duration before."""

    name: str
    calls: int
    errors: int
    avg_ms: float | None
    avg_ms_before: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def healthy(self) -> bool:
        slower = (self.avg_ms is not None and self.avg_ms_before
                  and self.avg_ms / self.avg_ms_before > HEALTHY_MAX_SLOWDOWN)
        return (self.calls >= HEALTHY_MIN_CALLS and self.error_rate <= HEALTHY_MAX_ERROR_RATE
                and not slower)

    def describe(self) -> str:
        return f"{self.error_rate * 100:.1f} % errors over {self.calls:,} calls since the onset"


@dataclass
class Alternatives:
    """Models and providers seen since the onset, and what the route ran before it."""

    models: list[Health] = field(default_factory=list)
    providers: list[Health] = field(default_factory=list)
    route_before: dict[str, list[str]] = field(default_factory=dict)  # "model" → busiest first
    route_after: dict[str, list[str]] = field(default_factory=dict)
    prompt_versions_before: dict[str, str] = field(default_factory=dict)  # prompt_id → version


def _usage(session: Session, route: str, start: datetime, onset: datetime, end: datetime,
           *, others_only: bool = False) -> list[tuple[Any, ...]]:
    """(model, provider, after onset?, on `route`?, calls, errors, sum and count of durations)
    over every route (`others_only`: every other route) in `[start, end)`, one grouped query."""
    inner = select(C.model, C.provider, case((C.ts >= onset, 1), else_=0).label("after"),
                   case((C.route == route, 1), else_=0).label("mine"),
                   case((IS_ERROR, 1), else_=0).label("error"), C.duration_ms
                   ).where(*event_conditions(None, start, end),
                           *([C.route != route] if others_only else [])).subquery()
    keys = (inner.c.model, inner.c.provider, inner.c.after, inner.c.mine)
    return list(session.execute(
        select(*keys, func.count(), func.sum(inner.c.error), func.sum(inner.c.duration_ms),
               func.count(inner.c.duration_ms)).group_by(*keys)))


def _frame_usage(frame: CallFrame, start: datetime, onset: datetime, end: datetime
                 ) -> list[tuple[Any, ...]]:
    """The route's own rows of `_usage`, cut from `frame`."""
    window = frame.between(start, end)
    model, provider = DIMENSIONS.index("model"), DIMENSIONS.index("provider")
    pairs: dict[tuple[Any, Any], int] = {}
    pair_of = np.array([pairs.setdefault((c[model], c[provider]), len(pairs))
                        for c in frame.combos], dtype=np.int64)
    after = (frame.us[window] >= micros(onset)).astype(np.int64)
    key = pair_of[frame.combo[window]] * 2 + after if frame.combos else after[:0]
    duration = frame.values["duration_ms"][window]
    reported = ~np.isnan(duration)
    size = 2 * len(pairs)
    calls = np.bincount(key, minlength=size)
    errors = np.bincount(key, weights=frame.flag(ERROR)[window], minlength=size)
    total_ms = np.bincount(key[reported], weights=duration[reported], minlength=size)
    n_ms = np.bincount(key[reported], minlength=size)
    return [(m, p, k % 2, 1, int(calls[k]), int(errors[k]), float(total_ms[k]) if n_ms[k] else None,
             int(n_ms[k]))
            for (m, p), i in pairs.items() for k in (2 * i, 2 * i + 1) if calls[k]]


def _prompt_versions(session: Session, route: str, start: datetime, onset: datetime,
                     frame: CallFrame | None) -> list[tuple[Any, Any, int]]:
    """(prompt_id, prompt_version, calls) of `route` in `[start, onset)`, both set."""
    if frame is None:
        return list(session.execute(
            select(C.prompt_id, C.prompt_version, func.count())
            .where(*event_conditions(route, start, onset), C.prompt_id.is_not(None),
                   C.prompt_version.is_not(None))
            .group_by(C.prompt_id, C.prompt_version)
        ).all())
    window = frame.between(start, onset)
    counts = np.bincount(frame.combo[window], minlength=len(frame.combos))
    found: dict[tuple[Any, Any], int] = {}
    pid, version = DIMENSIONS.index("prompt_id"), DIMENSIONS.index("prompt_version")
    for combo, calls in zip(frame.combos, counts.tolist(), strict=True):
        if calls and combo[pid] is not None and combo[version] is not None:
            key = (combo[pid], combo[version])
            found[key] = found.get(key, 0) + calls
    return [(*key, calls) for key, calls in found.items()]


def _busiest_first(counts: dict[str, int]) -> list[str]:
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def health_window(baseline_start: datetime, onset: datetime, now: datetime
                  ) -> tuple[datetime, datetime]:
    """The window `alternatives` reads: `HEALTH_SPAN` either side of the onset at most."""
    return max(baseline_start, onset - HEALTH_SPAN), min(now, onset + HEALTH_SPAN)


def alternatives(session: Session, route: str, *, baseline_start: datetime, onset: datetime,
                 now: datetime, frame: CallFrame | None = None) -> Alternatives:
    """Health of every model and provider since the onset (all routes, at most `HEALTH_SPAN`
    either side of it), the route's models and providers before and after the onset, and its
    pre-onset prompt versions. `frame`: the route's calls (`triage.frame`) covering the window;
    the route's own part is cut from it, only the other routes are queried."""
    start, end = health_window(baseline_start, onset, now)
    if frame is not None and not frame.covers(start, end):
        frame = None
    if frame is None:
        usage = _usage(session, route, start, onset, end)
    else:
        usage = _frame_usage(frame, start, onset, end) + _usage(session, route, start, onset,
                                                                end, others_only=True)
    # (dimension, name, after) → [calls, errors, sum ms, n ms]; (dimension, after) → route calls
    sums: dict[tuple[str, str, int], list[float]] = {}
    mine: dict[tuple[str, int], dict[str, int]] = {}
    for model, provider, after, on_route, calls, errors, total_ms, n_ms in usage:
        for dim, name in (("model", model), ("provider", provider)):
            if name is None:
                continue
            acc = sums.setdefault((dim, name, after), [0, 0, 0.0, 0])
            for i, value in enumerate((calls, errors or 0, total_ms or 0.0, n_ms)):
                acc[i] += value
            if on_route:
                counts = mine.setdefault((dim, after), {})
                counts[name] = counts.get(name, 0) + calls
    out = Alternatives()
    for dim, target in (("model", out.models), ("provider", out.providers)):
        now_sums = {name: acc for (d, name, after), acc in sums.items() if d == dim and after}
        for name in _busiest_first({n: int(acc[0]) for n, acc in now_sums.items()}):
            calls, errors, total_ms, n_ms = now_sums[name]
            was = sums.get((dim, name, 0))
            target.append(Health(name, int(calls), int(errors), total_ms / n_ms if n_ms else None,
                                 was[2] / was[3] if was and was[3] else None))
        out.route_before[dim] = _busiest_first(mine.get((dim, 0), {}))
        out.route_after[dim] = _busiest_first(mine.get((dim, 1), {}))
    rows = _prompt_versions(session, route, start, onset, frame)
    for prompt_id, version, _ in sorted(rows, key=lambda r: (-r[2], r[0], r[1])):
        out.prompt_versions_before.setdefault(prompt_id, version)
    return out


def round_up(tokens: float) -> int:
    """Up to a round number: the next 100 below 1,000, 500 below 10,000, else 1,000."""
    step = 100 if tokens < 1000 else 500 if tokens < 10_000 else 1000
    return max(step, int(math.ceil(tokens / step)) * step)


@dataclass
class Evidence:
    """What the suggestions are drawn from (all about one route)."""

    route: str
    incident_class: str
    rising: set[str]  # stats that shifted up (detector: step or drift, ratio > 1)
    baseline: WindowStats
    current: WindowStats
    p99_tokens_out_before: float | None
    attributions: Sequence[Attribution] = ()
    causes: Sequence[Cause] = ()
    alternatives: Alternatives = field(default_factory=Alternatives)


def _pick(healths: list[Health], preferred: list[str], bad: set[str]) -> tuple[str, str] | None:
    """(name, why): the route's own pre-onset value first (healthy since the onset, or unused
    since), else the busiest healthy one not in `bad`."""
    by_name = {h.name: h for h in healths}
    for name in preferred:
        health = by_name.get(name)
        if health is None:
            return name, "the route's own before the onset; not called since"
        if health.healthy:
            return name, (f"the route's own before the onset; healthy in the same window, "
                          f"{health.describe()}")
    for health in healths:
        if health.healthy and health.name not in bad and health.name not in preferred:
            return health.name, f"healthy in the same window, {health.describe()}"
    return None


def _switch(kind: str, ev: Evidence, explained: list[Attribution]) -> Suggestion | None:
    attributed = {a.value for a in explained if a.dimension == kind}
    class_moved = {"model": {"p95_duration_ms", "cost_per_call_usd"},
                   "provider": {"error_rate", "p95_duration_ms"}}[kind]
    errors_moved = any(s.startswith("error_code_rate:") for s in ev.rising)
    if not attributed:
        if explained and explained[0].dimension.startswith("prompt"):
            return None  # a prompt explains it: roll back rather than switch
        if not (ev.rising & class_moved or (kind == "provider" and errors_moved)):
            return None
    alts = ev.alternatives
    # Nothing attributed: whatever the route runs now is suspect.
    bad = attributed or set(alts.route_after.get(kind, []))
    preferred = [n for n in alts.route_before.get(kind, []) if n not in bad]
    picked = _pick(alts.models if kind == "model" else alts.providers, preferred, bad)
    if picked is None:
        return None
    name, why = picked
    away = f" away from {', '.join(sorted(bad))}" if bad else ""
    return Suggestion(kind, ev.route, f"switch {kind}{away} to {name} ({why})", kind, name)


def _clamp(ev: Evidence) -> Suggestion | None:
    if "p95_tokens_out" not in ev.rising or ev.p99_tokens_out_before is None:
        return None
    value = round_up(ev.p99_tokens_out_before)
    return Suggestion("clamp", ev.route, f"clamp max_tokens to {value:,} (pre-onset p99 "
                      f"tokens_out {ev.p99_tokens_out_before:,.0f}, rounded up)", "clamp", value)


def _retries(ev: Evidence) -> Suggestion | None:
    before, now = ev.baseline.retry_share or 0.0, ev.current.retry_share
    if "retry_share" not in ev.rising and (now is None or now - before < RETRY_RISE):
        return None
    now_text = "n/a" if now is None else f"{now * 100:.1f} %"
    return Suggestion("retries", ev.route, f"cap retries at 1 (retry share {before * 100:.1f} %"
                      f" → {now_text})", "retries", 1)


def _kill(ev: Evidence) -> Suggestion | None:
    """Only when the flagged rate passed the threshold: at or above it now, below it before (or
    risen by `KILL_RISE`) — a route that always flags 10 % is not an emergency."""
    rate, before = ev.current.flagged_rate, ev.baseline.flagged_rate
    if rate is None or rate < KILL_FLAGGED_RATE:
        return None
    if before is not None and before >= KILL_FLAGGED_RATE and rate - before < KILL_RISE:
        return None
    was = "" if before is None else f", {before * 100:.1f} % before"
    return Suggestion("kill", ev.route, f"kill switch: flagged rate {rate * 100:.1f} % since the "
                      f"onset{was} (threshold {KILL_FLAGGED_RATE * 100:.0f} %)", "kill")


def _rollback(ev: Evidence, explained: list[Attribution]) -> Suggestion | None:
    prompt = next((a for a in explained if a.dimension == "prompt_version"), None)
    if prompt is None:
        return None
    previous = ev.alternatives.prompt_versions_before.get(prompt.prompt_id or "")
    target = f" to version {previous}" if previous and previous != prompt.value else ""
    cause = next((c for c in ev.causes if c.kind in ("prompt", "deploy")
                  and c.agrees_with == prompt.label), None)
    ref = f" — the change: {cause.ref or cause.description}" if cause else ""
    name = f"prompt {prompt.prompt_id} " if prompt.prompt_id else "prompt "
    return Suggestion("rollback", ev.route,
                      f"roll back {name}version {prompt.value}{target}{ref}")


def suggestions(ev: Evidence) -> list[Suggestion]:
    """The mitigations that apply, in the class's order (see the module docstring)."""
    explained = explaining(ev.attributions)
    made = {
        "clamp": _clamp(ev),
        "model": _switch("model", ev, explained),
        "provider": _switch("provider", ev, explained),
        "retries": _retries(ev),
        "kill": _kill(ev),
        "rollback": _rollback(ev, explained),
    }
    order = ORDER.get(ev.incident_class, ORDER["unknown"])
    return [s for kind in order if (s := made[kind]) is not None]
