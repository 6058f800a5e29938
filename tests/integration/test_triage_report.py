"""The composed triage of a route on SQLite and PostgreSQL: generated scenarios and the demo."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from llm_incident.demo import seed_demo
from llm_incident.metrics.percentiles import reference_percentile
from llm_incident.triage.attribution import baseline_start
from llm_incident.triage.report import (AFFECTED_CUSTOMERS, AFFECTED_ROUTES, FIELDS,
                                        METRIC_DELTAS, RECENT_CHANGE, START_TIME, triage)
from llm_incident.triage.suggest import round_up
from tests.triage_db import seeded

LOOKBACK = timedelta(hours=6)



def _p95(values):
    return reference_percentile(values, 95.0)


def test_token_explosion_onset_attribution_cause_clamp_and_deltas(db):
    scenario, cause_id = seeded(db, "token_explosion")
    truth, now = scenario.truth, scenario.now
    with db.read() as session:
        found = triage(session, scenario.route, now=now, incident_class="cost")
    assert found.onset_source == "detected"
    assert abs(found.onset - truth.onset) <= timedelta(minutes=2)
    assert found.main_stat == "p95_tokens_out"
    assert found.attributions[0].label == "prompt_version 42"
    assert found.causes[0].change_id == cause_id
    onset = found.onset
    # Baseline = as long as onset → now, just before the onset; now = onset → now.
    span = now - onset
    assert (found.baseline_window.start, found.baseline_window.end) == (onset - span, onset)
    before = [e for e in scenario.events if onset - span <= e["ts"] < onset]
    after = [e for e in scenario.events if onset <= e["ts"] < now]
    assert found.deltas["p95_tokens_out"].baseline == _p95(e["tokens_out"] for e in before)
    assert found.deltas["p95_tokens_out"].now == _p95(e["tokens_out"] for e in after)
    # Clamp to the pre-onset p99 of the attribution's baseline, rounded up.
    start = baseline_start(onset, now, LOOKBACK)
    p99 = reference_percentile((e["tokens_out"] for e in scenario.events
                                if start <= e["ts"] < onset), 99.0)
    clamp = next(s for s in found.suggestions if s.kind == "clamp")
    assert clamp.value == round_up(p99) and clamp.value >= p99
    assert clamp.command == f"/llm-incident clamp {scenario.route} {round_up(p99)}"
    rollback = next(s for s in found.suggestions if s.kind == "rollback")
    assert "version 42 to version 41" in rollback.text and "prompts/reply@v42" in rollback.text
    fields = found.runbook_fields()
    assert tuple(fields) == FIELDS
    assert fields[START_TIME].startswith(f"{onset:%Y-%m-%d %H:%M} UTC (detected: p95 tokens_out")
    assert fields[AFFECTED_ROUTES].startswith(scenario.route)
    assert fields[AFFECTED_CUSTOMERS].startswith("all tiers (free, pro, enterprise)")
    assert "Prompt reply v42" in fields[RECENT_CHANGE]
    assert "p95 tokens_out" in fields[METRIC_DELTAS]
    data = json.loads(json.dumps(found.to_dict()))
    assert data["onset"] == onset.isoformat() and data["attributions"][0]["value"] == "42"
    assert any("clamp max_tokens to" in line for line in found.lines())


def test_quality_regression_names_the_tier_and_kills(db):
    scenario, cause_id = seeded(db, "quality_regression", rate=200)
    with db.read() as session:
        found = triage(session, scenario.route, now=scenario.now, incident_class="quality")
    assert found.main_stat == "flagged_rate"
    assert found.attributions[0].label == "customer_tier free"
    assert found.causes[0].change_id == cause_id
    fields = found.runbook_fields()
    assert fields[AFFECTED_CUSTOMERS].startswith("tiers: customer_tier free (")
    assert [s.kind for s in found.suggestions][:1] == ["kill"]


def test_provider_storm_caps_retries(db):
    scenario, _ = seeded(db, "provider_429")
    with db.read() as session:
        found = triage(session, scenario.route, now=scenario.now, incident_class="provider")
    assert found.main_stat == "error_rate"
    assert found.attributions[0].label == "region eu-west-1"
    assert found.runbook_fields()[RECENT_CHANGE] == "no recorded change near the onset"
    retries = next(s for s in found.suggestions if s.kind == "retries")
    assert retries.command == f"/llm-incident retries {scenario.route} 1"


def test_no_shift_says_so_plainly(db):
    scenario, _ = seeded(db, "control")
    with db.read() as session:
        found = triage(session, scenario.route, now=scenario.now)
    assert found.onset is None and not found.found
    fields = found.runbook_fields()
    assert set(fields.values()) == {"no shift found in the last 6 h"}
    assert found.lines()[1].startswith("No shift found in the last 6 h")
    assert json.loads(json.dumps(found.to_dict()))["onset"] is None


def test_since_overrides_the_detected_onset(db):
    scenario, _ = seeded(db, "latency_spike")
    since = scenario.truth.onset - timedelta(minutes=10)
    with db.read() as session:
        found = triage(session, scenario.route, now=scenario.now, incident_class="latency",
                       since=since)
    assert found.onset == since and found.onset_source == "since"
    assert found.runbook_fields()[START_TIME] == (f"{since:%Y-%m-%d %H:%M} UTC "
                                                  "(given with `since`)")
    assert found.baseline_window.end == since
    assert found.attributions[0].label == "model gpt-4o"


def test_the_demo_token_explosion(db):
    """Declared 27 min after the prompt change: onset at the change (± 2 min), the pre-change
    baseline, prompt v42 as the cause and a clamp with a number."""
    now = datetime(2026, 11, 26, 20, 4, tzinfo=timezone.utc)
    with db.write() as session:
        seed_demo(session, "token-explosion", now=now)
    with db.read() as session:
        found = triage(session, "support.reply", now=now, incident_class="cost")
    change_at = now - timedelta(minutes=27)
    assert abs(found.onset - change_at) <= timedelta(minutes=2)
    assert found.deltas["p95_tokens_out"].baseline < 800  # before the change (~610)
    assert found.attributions[0].label == "prompt_version 42"
    assert found.causes[0].kind == "prompt" and found.causes[0].agrees_with == "prompt_version 42"
    clamp = next(s for s in found.suggestions if s.kind == "clamp")
    assert isinstance(clamp.value, int) and 500 <= clamp.value <= 1000
