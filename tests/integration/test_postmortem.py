"""The postmortem on both backends: golden Markdown, metric values against a reference computation,
windows, follow-ups, still-active mitigations, evidence cap, determinism, charts."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from llm_incident.controls.service import change_controls
from llm_incident.events.ingest import ingest_events
from llm_incident.events.pricing import cost_usd
from llm_incident.incidents.postmortem import (
    chart_markers,
    chart_series,
    compile_postmortem,
    render_markdown,
    route_charts,
    still_active_mitigations,
)
from llm_incident.incidents.service import IncidentError, StartRequest, get_incident, start_incident
from llm_incident.metrics.compare import COMPARED, fmt
from llm_incident.metrics.percentiles import reference_percentile
from tests import postmortem_scenario as scenario
from tests.postmortem_scenario import CLOSED, MITIGATED, OTHER, ROUTE, START

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
LATER = CLOSED + timedelta(hours=3)


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; LLM_INCIDENT_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("LLM_INCIDENT_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (see the diff above)"


def compiled(db, now=LATER, **kwargs):
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=now, **kwargs)
    return pm, render_markdown(pm)


@pytest.fixture
def closed(db):
    scenario.seed(db)
    return db


def test_golden_closed_incident(closed):
    pm, text = compiled(closed)
    golden("postmortem_closed.md", text)
    again, same = compiled(closed, now=LATER + timedelta(days=2))  # `now` plays no part once closed
    assert same == text and again.to_dict() == pm.to_dict()


def test_golden_open_incident_is_a_draft_as_of_now(db):
    scenario.seed(db, close=False)
    pm, text = compiled(db, now=START + timedelta(minutes=50))
    assert pm.draft and pm.as_of == START + timedelta(minutes=50)
    golden("postmortem_draft.md", text)
    assert "**Draft as of 2026-11-26 14:50 UTC**" in text


def test_sections_follow_the_runbook(closed):
    _, text = compiled(closed)
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Summary", "Triage", "Mitigations", "Evidence", "Follow-ups", "Timeline"]


# --- metrics against a reference computation ---------------------------------------------------


def reference(start: datetime, end: datetime) -> dict[str, float | int | None]:
    """The table's stats for support.reply in prod over [start, end), straight from the events."""
    rows = [e for e in scenario.events() if e["route"] == ROUTE and e["env"] == "prod"
            and start <= datetime.fromisoformat(e["ts"]) < end]
    n = len(rows)
    costs = [c for e in rows if (c := cost_usd(e["model"], e["provider"], e["tokens_in"],
                                                e["tokens_out"], datetime.fromisoformat(e["ts"])))
             is not None]
    flagged = sum(e.get("status") == "flagged" or e.get("contains_banned", False) for e in rows)
    errors = sum(e.get("status") == "error" or e.get("error_code") is not None for e in rows)
    return {
        "calls": n,
        "flagged_rate": flagged / n,
        "error_rate": errors / n,
        "p95_duration_ms": reference_percentile([e["duration_ms"] for e in rows], 95),
        "p95_tokens_out": reference_percentile([e["tokens_out"] for e in rows], 95),
        "avg_tokens_in": sum(e["tokens_in"] for e in rows) / n,
        "avg_tokens_out": sum(e["tokens_out"] for e in rows) / n,
        "cost_per_call_usd": sum(costs) / len(costs),
        "retry_share": sum(e["attempt"] > 1 for e in rows) / n,
    }


def metrics_table(text: str, route: str) -> dict[str, list[str]]:
    """label → [baseline, during, Δ during, after, Δ after] from the route's Markdown table."""
    section = text.split(f"#### `{route}`", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split("|") for line in section.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_metric_values_match_a_reference_computation(closed):
    pm, text = compiled(closed)
    windows = {"baseline": (START - (CLOSED - START), START), "during": (START, MITIGATED),
               "after": (MITIGATED, CLOSED)}
    assert [(p.name, p.start, p.end) for p in pm.phases] == [(k, *v) for k, v in windows.items()]
    table = metrics_table(text, ROUTE)
    (route_metrics,) = [m for m in pm.metrics if m.route == ROUTE]
    for column, (phase, (start, end)) in zip((0, 1, 3), windows.items(), strict=True):
        expected = reference(start, end)
        stats = route_metrics.phase(phase)
        for stat, value in expected.items():
            label, kind = COMPARED[stat]
            assert table[label][column] == fmt(value, kind), (phase, stat)
            assert getattr(stats, stat) == pytest.approx(value, rel=1e-9), (phase, stat)
    base, during = reference(*windows["baseline"]), reference(*windows["during"])
    assert table["p95 tokens_out"][2] == f"{during['p95_tokens_out'] / base['p95_tokens_out']:.1f}×"
    points = (during["flagged_rate"] - base["flagged_rate"]) * 100
    assert table["flagged rate"][2] == f"{points:+.1f} pts"
    # staging traffic (tokens_out 9999) and the other route stay out of support.reply's numbers
    assert route_metrics.during.calls == 37 and "9,999" not in table["p95 tokens_out"]


def test_usage_lists_models_and_providers_per_route(closed):
    pm, _ = compiled(closed)
    assert [(u.route, u.model, u.provider, u.baseline_calls, u.incident_calls)
            for u in pm.usage] == [
        (ROUTE, "gpt-4o-mini", "openai", 60, 84),
        (ROUTE, "in-house-7b", "self", 0, 1),
        (OTHER, "claude-3-5-haiku", "anthropic", 0, 10),
    ]


# --- mitigations, follow-ups, evidence -----------------------------------------------------------


def test_decisions_mitigation_and_changes(closed):
    pm, text = compiled(closed)
    assert pm.first_mitigation_at == MITIGATED and pm.time_to_mitigate == timedelta(minutes=12)
    assert [(d.actor, d.route, d.outcome, d.after) for d in pm.decisions] == [
        ("U9", ROUTE, "refused", {"enabled": False}),
        ("U2", ROUTE, "applied", {"max_tokens": 800}),
        ("U1", OTHER, "applied", {"enabled": False}),
        ("U2", ROUTE, "applied", {"model": "gpt-4o"}),
        ("U2", ROUTE, "applied", {"model": None}),
    ]
    assert pm.routes == [ROUTE, OTHER]  # the killed route joins the impacted ones
    assert [c.ref for c in pm.changes_before] == ["2.3.1", "v42"]  # 24 h lookback: not 30 h ago
    assert [c.ref for c in pm.changes_during] == ["v41"]
    assert "- 2026-11-26 14:12 UTC — @U2 clamped max_tokens to 800 on `support.reply`" in text
    assert "| @U9 | enabled: true → false | refused |" in text
    assert "revert support prompt to v41 \\| hotfix" in text  # pipes escaped in table cells


def test_follow_ups_derived_from_what_happened(closed):
    pm, text = compiled(closed)
    assert pm.follow_ups == [
        "Add evals from the 20 events labelled bad (`llm-incident export-labels --incident 1`); "
        "keep the 5 labelled good as regression cases",
        "Fix or roll back prompt v42 on `support.reply` — the likely cause (prompt change v42 at "
        "13:50 UTC)",
        "Decide: keep the token clamp on `support.reply` (800 tokens) or fix prompt v42",
        "Add a retry cap to the client for `support.reply` (error rate 0.0% → 10.8%; "
        "retry share 0.0% → 24.3%)",
        "Alert on p95 tokens_out jumps for `support.reply` (364 → 2,873)",
        "Alert on flagged-rate jumps and tighten guardrails for `support.reply` (3.3% → 16.2%)",
        "Restore or make permanent: `support.reply` max_tokens clamped to 800",
        "Restore or make permanent: `search.answer` killed",
    ]
    for prompt in ("Permanent fix", "Tests/evals to add", "Guardrails to tighten"):
        assert f"- [ ] {prompt}: _to fill_" in text


def test_still_active_mitigations_follow_the_controls_but_the_closed_postmortem_does_not(closed):
    frozen_pm, frozen_text = compiled(closed)
    with closed.read() as session:
        assert still_active_mitigations(session, get_incident(session, 1)) == [
            (ROUTE, "max_tokens clamped to 800"), (OTHER, "killed")]
    with closed.write() as session:
        change_controls(session, OTHER, "prod", {"enabled": True}, actor="U1", incident=1,
                        now=CLOSED + timedelta(minutes=1))
        change_controls(session, ROUTE, "staging", {"retry_cap": 1}, actor="U1", incident=1,
                        expires_at=CLOSED + timedelta(hours=2), now=CLOSED + timedelta(minutes=2))
        change_controls(session, ROUTE, "prod", {"max_tokens": 300}, actor="U7",
                        now=CLOSED + timedelta(minutes=3))  # not even for this incident
    with closed.read() as session:
        assert still_active_mitigations(session, get_incident(session, 1)) == [
            (ROUTE, "max_tokens clamped to 300"),
            (ROUTE, "[staging] retry cap 1 (until 2026-11-26 17:00 UTC)")]
    pm, text = compiled(closed)
    assert pm.frozen and pm.first_mitigation_at == MITIGATED
    # everything above the note is the postmortem as it was at the close, byte for byte
    body, note = text.split("\n\n## After close\n\n", 1)
    assert body + "\n" == frozen_text and "## After close" not in frozen_text
    assert pm.still_active == frozen_pm.still_active and pm.follow_ups == frozen_pm.follow_ups
    assert pm.metrics == frozen_pm.metrics
    assert "Restore or make permanent: `search.answer` killed" in body
    assert note.splitlines()[2:] == [
        "- 2026-11-26 15:01 UTC — @U1 re-enabled `search.answer`",
        "- 2026-11-26 15:02 UTC — @U1 capped retries at 1 on `support.reply` in staging "
        "(until 2026-11-26 17:00 UTC)",
        "- Now `support.reply`: max_tokens clamped to 300 (at close: max_tokens clamped to 800)",
        "- Now `search.answer`: back to its default controls (at close: killed)",
        "- Now `support.reply` (staging): retry cap 1 (until 2026-11-26 17:00 UTC) "
        "(at close: default controls)",
    ]


def test_evidence_is_capped_bad_first_with_counts(db):
    scenario.seed(db, close=False)
    closed = db
    pm, text = compiled(closed, evidence_limit=10)
    assert (pm.evidence_counts.attached, pm.evidence_counts.bad, pm.evidence_counts.good) == (
        28, 20, 5)
    assert [e.label for e in pm.evidence] == ["bad"] * 10 and pm.evidence_more == 18
    assert "_…and 18 more: `llm-incident export-labels --incident 1` exports them all._" in text
    full, _ = compiled(closed, evidence_limit=100)
    labels = [e.label for e in full.evidence]
    assert labels == ["bad"] * 20 + ["good"] * 5 + [None] * 3 and full.evidence_more == 0
    assert full.evidence[0].note == "note 0: 2,4k tokens | rambling"


# --- edges ---------------------------------------------------------------------------------------


def test_without_mitigation_and_without_span(db):
    with db.write() as session:
        ingest_events(session, [{"event_id": f"e{i}", "route": "r", "tokens_out": 100 + i,
                                 "ts": (START - timedelta(minutes=50 - 2 * i)).isoformat()}
                                for i in range(40)], now=START)
        start_incident(session, StartRequest(commander="U1", routes=("r",)), now=START)
    pm, text = compiled(db, now=START)  # opened this very moment: no span, no metrics
    assert pm.phases == [] and "no time span yet" in text
    with db.read() as session:
        assert route_charts(session, pm) == {}
    pm, text = compiled(db, now=START + timedelta(minutes=30))
    assert [p.name for p in pm.phases] == ["baseline", "during"] and pm.first_mitigation_at is None
    assert pm.metrics[0].after is None and pm.metrics[0].during.calls == 15
    assert "First mitigation:** none (nothing was mitigated)" in text
    assert "Capture and label 5–10 example events next time" in text
    with db.read() as session, pytest.raises(IncidentError):
        compile_postmortem(session, 7, now=START)


def test_charts_and_their_series(closed):
    pm, _ = compiled(closed)
    with closed.read() as session:
        series = chart_series(session, ROUTE, START - timedelta(hours=1), CLOSED, buckets=24)
        charts = route_charts(session, pm)
    assert series.bucket == timedelta(minutes=5) and len(series.points) == 24
    assert sum(p.calls for p in series.points) == 60 + 37 + 48 + 10  # every env here
    first_during = series.points[12]  # 14:00–14:05: 15 prod calls (3 flagged) + 2 staging flagged
    assert first_during.ts == START and first_during.calls == 17
    assert first_during.p95_tokens_out == 9999 and first_during.flagged_rate == pytest.approx(5 / 17)
    assert series.points[13].calls == 15 + 1 + 2  # the unpriced call at 14:05 is in the next one
    assert [(m.kind, m.label) for m in chart_markers(pm, ROUTE)] == [
        ("start", "start"), ("mitigation", "max_tokens=800"), ("mitigation", "model=gpt-4o"),
        ("mitigation", "model=none"), ("close", "close")]
    assert list(charts) == [ROUTE, OTHER]
    for png in charts.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
