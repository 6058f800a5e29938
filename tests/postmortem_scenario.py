"""A fixed incident for the postmortem tests: seeded traffic, controls, evidence, status, close.

Incident #1 on `support.reply` (prod) from 14:00 to 15:00 UTC: output tokens explode after a
prompt change at 13:50; a token clamp at 14:12 is the first mitigation (still on at close);
`search.answer` is killed at 14:20 (still killed); a model switch is tried and removed; a
responder without rights is refused. 28 events attached (20 bad, 5 good, 3 unlabelled); the
first three carry output excerpts with an email, a phone number and an API key in them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.controls.service import change_controls, record_refusal
from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.evidence.service import attach
from llm_incident.incidents.models import IncidentClass
from llm_incident.incidents.postmortem_data import freeze_postmortem
from llm_incident.incidents.service import (
    StartRequest,
    add_timeline,
    close_incident,
    get_incident,
    post_status,
    start_incident,
    touch,
)

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
START, MITIGATED, CLOSED = T0, T0 + timedelta(minutes=12), T0 + timedelta(hours=1)
ROUTE, OTHER = "support.reply", "search.answer"


EXCERPTS = ("Sure! Write to jane.doe@example.com or call +1 415-555-0134 and we will   refund",
            "Your key sk-live0123456789abcdefXYZ is fine; " + "very " * 40 + "long answer",
            "Thanks | see the attached policy")


def _event(i: int, ts: datetime, phase: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"{phase}-{i:03d}", "route": ROUTE, "ts": ts.isoformat(), "env": "prod",
        "model": "gpt-4o-mini", "provider": "openai", "tokens_in": 900 + (i * 37) % 200,
        "prompt_id": "support.main", "prompt_version": "41", "attempt": 1,
    }
    base.update(fields)
    return base


def events() -> list[dict[str, Any]]:
    """Baseline 13:00–14:00, during 14:00–14:12, after 14:12–15:00, plus noise to leave out."""
    out = []
    for i in range(60):  # baseline: one call a minute, modest outputs
        out.append(_event(i, START - timedelta(hours=1) + timedelta(minutes=i, seconds=7),
                          "base", tokens_out=250 + (i * 13) % 120,
                          duration_ms=800.0 + (i * 29) % 400,
                          status="flagged" if i in (10, 40) else "ok"))
    for i in range(36):  # during: every 20 s, token explosion, retries and some 429s
        out.append(_event(i, START + timedelta(seconds=20 * i + 3), "during",
                          tokens_out=2000 + (i * 97) % 900, duration_ms=2500.0 + (i * 53) % 1500,
                          prompt_version="42",
                          status="error" if i % 9 == 4 else ("flagged" if i % 6 == 0 else "ok"),
                          error_code="429" if i % 9 == 4 else None,
                          attempt=2 if i % 4 == 1 else 1,
                          output_excerpt=EXCERPTS[i % 3] if i < 3 else None))
    for i in range(48):  # after the clamp: one call a minute, outputs capped at 800
        out.append(_event(i, MITIGATED + timedelta(minutes=i, seconds=11), "after",
                          tokens_out=min(800, 700 + (i * 41) % 300),
                          duration_ms=1100.0 + (i * 31) % 500, prompt_version="42",
                          status="flagged" if i == 30 else "ok"))
    out.append(_event(0, START + timedelta(minutes=5), "unpriced", model="in-house-7b",
                      provider="self", tokens_out=3000, duration_ms=4000.0, prompt_version="42"))
    for i in range(10):  # staging and another route: not in support.reply's prod metrics
        out.append(_event(i, START + timedelta(minutes=3 * i), "staging", env="staging",
                          tokens_out=9999, duration_ms=9999.0, status="flagged"))
        out.append(_event(i, START + timedelta(minutes=3 * i), "other", route=OTHER,
                          model="claude-3-5-haiku", provider="anthropic", tokens_out=300,
                          duration_ms=700.0))
    out.append(_event(0, START - timedelta(hours=3), "old", tokens_out=5000, duration_ms=1.0))
    return out


def _control(session, incident, route, changes, actor, at, expires_at=None, text=""):
    result = change_controls(session, route, "prod", changes, actor=actor, incident=incident.number,
                             reason=f"/llm-incident {text or 'change'} {route}",
                             expires_at=expires_at, now=at)
    add_timeline(session, incident, actor=actor, kind="control", now=at,
                 text=f"<@{actor}> {text} `{route}`", before={route: result.before},
                 after={route: result.after})
    touch(session, incident, at)
    return result


def seed(db: Database, *, close: bool = True) -> None:
    """Store the scenario; `close=False` leaves the incident open (a draft)."""
    with db.write() as session:
        assert ingest_events(session, events(), now=CLOSED).accepted == 60 + 36 + 48 + 1 + 20 + 1
        for ts, route, kind, text, ref in (
                (START - timedelta(minutes=10), ROUTE, ChangeKind.prompt,
                 "support prompt v42: longer, friendlier answers", "v42"),
                (START - timedelta(hours=5), OTHER, ChangeKind.deploy, "search service 2.3.1",
                 "2.3.1"),
                (START - timedelta(hours=30), ROUTE, ChangeKind.model, "too old to list", None),
                (START + timedelta(minutes=45), ROUTE, ChangeKind.prompt,
                 "revert support prompt to v41 | hotfix", "v41")):
            record_change(session, ChangeIn(route=route, kind=kind, description=text, ref=ref,
                                            author="deploy-bot", ts=ts), now=ts)
        incident, _ = start_incident(session, StartRequest(
            commander="U1", symptom="support.reply tokens exploding", routes=(ROUTE,),
            envs=("prod",), customer_tiers=("pro", "enterprise"),
            incident_class=IncidentClass.cost), now=START)
    with db.write() as session:
        incident = get_incident(session, 1)
        post_status(session, incident, actor="U1", text="p95 tokens_out 8x since 14:00; "
                    "looking at <@U2>'s prompt change", now=START + timedelta(minutes=5))
        record_refusal(session, ROUTE, "prod", {"enabled": False}, actor="U9",
                       reason="not a responder", incident=1, now=START + timedelta(minutes=8))
        _control(session, incident, ROUTE, {"max_tokens": 800}, "U2", MITIGATED, text="clamped")
        _control(session, incident, OTHER, {"enabled": False}, "U1",
                 START + timedelta(minutes=20), text="killed")
        _control(session, incident, ROUTE, {"model": "gpt-4o"}, "U2",
                 START + timedelta(minutes=25), text="switched model")
        _control(session, incident, ROUTE, {"model": None}, "U2", START + timedelta(minutes=40),
                 text="removed model override")
        labels = (["bad"] * 20) + (["good"] * 5) + ([None] * 3)
        for i, label in enumerate(labels):
            phase = "during" if i < 25 else "after"
            attach(session, incident, [f"{phase}-{i % 36:03d}" if i < 25 else f"after-{i:03d}"],
                   label=label, note=f"note {i}: 2,4k tokens | rambling" if i % 7 == 0 else None,
                   actor="U3", now=START + timedelta(minutes=30, seconds=i))
        post_status(session, incident, actor="U2", text="clamp holding; prompt revert deploying",
                    now=START + timedelta(minutes=46))
        if close:
            close_incident(session, incident, actor="U1",
                           summary="Prompt v42 made answers 8x longer; clamped to 800 tokens, "
                                   "reverted the prompt.", now=CLOSED)
            freeze_postmortem(session, incident, now=CLOSED)  # as the close command does
