"""Generated triage scenarios with known truth, shared by the tests and bench/triage.py.

Each scenario is ~6 h of one route's calls before `now` (Poisson traffic at `rate` calls/min, a
realistic mix of env, model, provider, region, customer tier and prompt version), with one
injected incident starting 20–60 min before `now` (a gradual drift starts 2–3 h before), the
change-log rows around it (the cause, when there is one, a minute before the onset; an unrelated
deploy on another route at the onset; an older change on the route) and the truth: onset, the
stats that must move, the dimension value injected and the cause's description.

Kinds: token_explosion (prompt v42 at the onset, tokens_out ×4), latency_spike (one model ×4
slower), provider_429 (a 429 storm in one region, retries up), quality_regression (one customer
tier flagged), cost_model_mix (model-mix change to the expensive model), traffic_surge (×3 calls,
behaviour unchanged), gradual_drift (tokens_out growing linearly), control (nothing).

Effects are strong enough that at 5 calls/min about 1.5–2 calls a minute are affected from the
onset (gpt-4o carries 40 % of calls, eu-west-1 45 %, the free tier 60 %): a change that touches
fewer calls than that cannot be placed within ±2 min at that traffic by any method — the first
affected call itself often comes later.

Deterministic: numpy's generator seeded with (kind, rate, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from llm_incident.changes import Change
from llm_incident.events.models import Event
from llm_incident.triage.series import MinuteSeries, series_from_rows

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
HISTORY = timedelta(hours=6)
MINUTE = timedelta(minutes=1)
KINDS = ("token_explosion", "latency_spike", "provider_429", "quality_regression",
         "cost_model_mix", "traffic_surge", "gradual_drift", "control")
STEP_KINDS = KINDS[:5]
CONTROL_KINDS = ("traffic_surge", "control")
RATES = (5, 30, 200)

# model -> provider, $ per input token, $ per output token, latency factor, traffic share
MODELS = {
    "gpt-4o-mini": ("openai", 0.15e-6, 0.6e-6, 1.0, 0.45),
    "gpt-4o": ("openai", 2.5e-6, 10e-6, 1.15, 0.40),
    "claude-3-5-haiku": ("anthropic", 0.8e-6, 4e-6, 1.05, 0.15),
}
REGIONS = {"us-east-1": 0.4, "eu-west-1": 0.45, "ap-south-1": 0.15}
TIERS = {"free": 0.6, "pro": 0.3, "enterprise": 0.1}
ENVS = {"prod": 0.9, "staging": 0.1}

# kind -> incident class, shift kind, stats that must move, injected dimension
TRUTHS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, str] | None]] = {
    "token_explosion": ("cost", "step", ("p95_tokens_out", "cost_per_call_usd"),
                        ("prompt_version", "42")),
    "latency_spike": ("latency", "step", ("p95_duration_ms",), ("model", "gpt-4o")),
    "provider_429": ("provider", "step", ("error_rate", "error_code_rate:429", "retry_share"),
                     ("region", "eu-west-1")),
    "quality_regression": ("quality", "step", ("flagged_rate",), ("customer_tier", "free")),
    "cost_model_mix": ("cost", "step", ("cost_per_call_usd",), ("model", "gpt-4o")),
    "traffic_surge": ("unknown", "none", ("calls_per_min",), None),
    "gradual_drift": ("cost", "drift", ("p95_tokens_out",), None),
    "control": ("unknown", "none", (), None),
}


@dataclass(frozen=True)
class Truth:
    """What the triage of a scenario should find."""

    kind: str
    incident_class: str
    shift: str                      # "step" | "drift" | "none" (behaviour unchanged)
    onset: datetime | None
    stats: tuple[str, ...]          # stats that must move (at the onset)
    dimension: tuple[str, str] | None
    cause: str | None               # description of the change-log row that caused it


@dataclass
class Scenario:
    kind: str
    rate: int
    seed: int
    route: str
    now: datetime
    declared_at: datetime
    truth: Truth
    events: list[dict[str, Any]] = field(repr=False)
    changes: list[dict[str, Any]] = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.rate}/min#{self.seed}"


def route_name(kind: str, rate: int, seed: int) -> str:
    return f"{kind.replace('_', '-')}.r{rate}.s{seed}"


def _pick(rng: np.random.Generator, options: dict[str, float], n: int) -> np.ndarray:
    names = list(options)
    weights = np.array([options[k] for k in names])
    return np.array(names, dtype=object)[rng.choice(len(names), size=n, p=weights / weights.sum())]


def generate(kind: str, rate: int, seed: int, *, now: datetime = NOW,
             history: timedelta = HISTORY, route: str | None = None) -> Scenario:
    """One scenario of `kind` at `rate` calls/min (see the module docstring)."""
    if kind not in TRUTHS:
        raise ValueError(f"unknown scenario kind {kind!r}")
    rng = np.random.default_rng([KINDS.index(kind), rate, seed])
    route = route or route_name(kind, rate, seed)
    n_minutes = history // MINUTE
    start = now - history
    if kind == "gradual_drift":
        onset_age = int(rng.integers(120, 181))
    else:
        onset_age = int(rng.integers(20, 61))
    onset_minute = n_minutes - onset_age
    onset = start + onset_minute * MINUTE
    per_minute = np.full(n_minutes, float(rate))
    if kind == "traffic_surge":
        per_minute[onset_minute:] *= 3
    counts = rng.poisson(per_minute)
    minute = np.repeat(np.arange(n_minutes), counts)
    n = minute.size
    seconds = minute * 60.0 + rng.uniform(0, 60, n)
    after = minute >= onset_minute

    models = _pick(rng, {m: v[4] for m, v in MODELS.items()}, n)
    if kind == "cost_model_mix":  # the default model moved to gpt-4o for most traffic
        moved = after & (rng.uniform(size=n) < 0.6)
        models[moved] = "gpt-4o"
    regions = _pick(rng, REGIONS, n)
    tiers = _pick(rng, TIERS, n)
    envs = _pick(rng, ENVS, n)
    versions = np.where(after, "42", "41") if kind == "token_explosion" else np.full(n, "41")
    tokens_in = np.maximum(rng.lognormal(np.log(700), 0.4, n), 1).astype(int)
    out_scale = np.ones(n)
    if kind == "token_explosion":
        out_scale[after] = 4.0
    if kind == "gradual_drift":
        out_scale = 1 + 1.5 * np.clip((minute - onset_minute) / onset_age, 0, None)
    tokens_out = np.maximum(rng.lognormal(np.log(250), 0.55, n) * out_scale, 1).astype(int)
    speed = np.array([MODELS[m][3] for m in models])
    duration = (200 + tokens_out * 6.0) * speed + rng.exponential(250, n)
    if kind == "latency_spike":
        duration[after & (models == "gpt-4o")] *= 4
    flagged_p = np.full(n, 0.01)
    if kind == "quality_regression":
        flagged_p[after & (tiers == "free")] = 0.5
    roll = rng.uniform(size=n)
    status = np.where(roll < flagged_p, "flagged", "ok").astype(object)
    codes = np.full(n, None, dtype=object)
    base_error = rng.uniform(size=n) < 0.005
    codes[base_error] = _pick(rng, {"500": 0.5, "503": 0.3, "429": 0.2}, int(base_error.sum()))
    status[base_error] = "error"
    attempt = np.where(rng.uniform(size=n) < 0.02, 2, 1)
    retry_of = np.zeros(0, dtype=int)
    if kind == "provider_429":
        storm = after & (regions == "eu-west-1") & (rng.uniform(size=n) < 0.8)
        codes[storm], status[storm] = "429", "error"
        retry_of = np.flatnonzero(storm)

    envs, models, regions, tiers, versions, status, codes = (
        a.tolist() for a in (envs, models, regions, tiers, versions, status, codes))
    seconds, tokens_in, tokens_out, duration, attempt = (
        a.tolist() for a in (seconds, tokens_in, tokens_out, duration, attempt))
    events = []
    for i in range(n):
        events.append(_event(route, f"{route}-{i}", start + timedelta(seconds=seconds[i]),
                             envs[i], models[i], regions[i], tiers[i], tokens_in[i],
                             tokens_out[i], duration[i], status[i], codes[i], versions[i],
                             attempt[i]))
    for j, i in enumerate(retry_of.tolist()):  # each 429 is retried a second later
        failed = rng.uniform() < 0.4
        events.append(_event(route, f"{route}-r{j}",
                             start + timedelta(seconds=seconds[i] + 1.0), envs[i],
                             models[i], regions[i], tiers[i], tokens_in[i], tokens_out[i],
                             duration[i],
                             "error" if failed else "ok", "429" if failed else None,
                             versions[i], 2))
    incident_class, shift, stats, dimension = TRUTHS[kind]
    changes, cause = _changes(kind, route, onset, now)
    declared = min(now, onset + timedelta(minutes=int(rng.integers(15, 41))))
    truth = Truth(kind, incident_class, shift, None if kind == "control" else onset, stats,
                  dimension, cause)
    return Scenario(kind, rate, seed, route, now, declared, truth, events, changes)


def _event(route: str, event_id: str, ts: datetime, env: str, model: str, region: str,
           tier: str, tokens_in: int, tokens_out: int, duration: float, status: str,
           code: str | None, version: str, attempt: int) -> dict[str, Any]:
    provider, price_in, price_out = MODELS[model][:3]
    failed = code is not None
    return {
        "event_id": event_id, "ts": ts, "received_at": ts, "route": route, "env": env,
        "model": model, "provider": provider, "region": region, "customer_tier": tier,
        "tokens_in": tokens_in, "tokens_out": None if failed else tokens_out,
        "duration_ms": round(duration / 10 if failed else duration, 3),
        "status": status, "error_code": code, "contains_banned": False,
        "cost_usd": None if failed else tokens_in * price_in + tokens_out * price_out,
        "priced": not failed, "prompt_id": "reply", "prompt_version": version,
        "attempt": attempt, "metadata": {},
    }


_CAUSES = {
    "token_explosion": ("prompt", "Prompt reply v42: answers now include full citations",
                        "prompts/reply@v42"),
    "quality_regression": ("config", "Moderation thresholds relaxed for the free tier",
                           "config/moderation#free-tier"),
    "cost_model_mix": ("model", "Default model gpt-4o-mini → gpt-4o for most traffic",
                       "models/reply: gpt-4o"),
}


def _changes(kind: str, route: str, onset: datetime,
             now: datetime) -> tuple[list[dict[str, Any]], str | None]:
    """The cause (a minute before the onset) and the decoys: a deploy of another route at the
    onset and an older change of this route."""
    rows = [
        _change(f"{route}.other", "deploy", f"Deploy {route}.other 7.1 (unrelated)",
                "deploy/other@7.1", onset),
        _change(route, "deploy", "Deploy 3.0 (older: logging)", "deploy@3.0",
                now - timedelta(hours=4)),
    ]
    cause = _CAUSES.get(kind)
    if cause is None:
        return rows, None
    change_kind, description, ref = cause
    rows.append(_change(route, change_kind, description, ref, onset - MINUTE))
    return rows, description


def _change(route: str, kind: str, description: str, ref: str, ts: datetime) -> dict[str, Any]:
    return {"route": route, "kind": kind, "description": description, "ref": ref,
            "author": "scenario", "ts": ts, "recorded_at": ts}


def scenarios(kinds: tuple[str, ...] = KINDS, rates: tuple[int, ...] = RATES,
              seeds: range = range(3)) -> list[Scenario]:
    return [generate(kind, rate, seed) for kind in kinds for rate in rates for seed in seeds]


def insert_changes(session: Session, scenario: Scenario) -> int | None:
    """Add the scenario's change-log rows; the id of the cause (None when there is none)."""
    cause_id = None
    for row in scenario.changes:
        change = Change(**row)
        session.add(change)
        session.flush()
        if row["description"] == scenario.truth.cause:
            cause_id = change.id
    return cause_id


def insert_scenario(session: Session, scenario: Scenario) -> int | None:
    """Bulk-insert the scenario's events and its change-log rows; the cause's change id."""
    session.execute(insert(Event.__table__), scenario.events)
    return insert_changes(session, scenario)


def call_row(event: dict[str, Any]) -> tuple[Any, ...]:
    """An event as the row `triage.series.minute_series` reads (ROW_FIELDS order), computed in
    Python with the metrics conventions — for building series without a database."""
    error = event["status"] == "error" or event["error_code"] is not None
    return (
        int(event["ts"].timestamp()),
        int(event["status"] == "flagged" or event["contains_banned"]),
        int(error),
        (event["error_code"] or "unknown") if error else None,
        int(event["attempt"] > 1),
        event["duration_ms"], event["tokens_in"], event["tokens_out"],
        (event["cost_usd"] or 0.0) if event["priced"] else None,
    )


def scenario_series(scenario: Scenario, lookback: timedelta = HISTORY) -> MinuteSeries:
    """The scenario's minute series over the `lookback` before its `now`, without a database."""
    start = scenario.now - lookback
    rows = [call_row(e) for e in scenario.events
            if e["route"] == scenario.route and start <= e["ts"] < scenario.now]
    return series_from_rows(scenario.route, start, scenario.now, rows)
