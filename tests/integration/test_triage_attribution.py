"""Attribution, likely cause and blast radius on generated scenarios, SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from sqlalchemy import insert

from llm_incident.events.models import Event
from llm_incident.metrics.percentiles import reference_percentile
from llm_incident.triage.attribution import attribute, aware_utc, baseline_start, counts_start
from llm_incident.triage.blast import blast_radius
from llm_incident.triage.cause import NO_CHANGE, likely_causes
from llm_incident.triage.shifts import detect_route
from tests.triage_db import seeded
from tests.triage_scenarios import STEP_KINDS, generate

LOOKBACK = timedelta(hours=6)



@pytest.mark.parametrize("kind", STEP_KINDS)
def test_the_injected_value_ranks_first_and_the_cause_with_it(db, kind):
    scenario, cause_id = seeded(db, kind)
    truth = scenario.truth
    with db.read() as session:
        found = attribute(session, scenario.route, stat=truth.stats[0], onset=truth.onset,
                          now=scenario.now, lookback=LOOKBACK)
        causes = likely_causes(session, [scenario.route, f"{scenario.route}.other"],
                               onset=truth.onset, attributions=found)
    assert (found[0].dimension, found[0].value) == truth.dimension
    assert found[0].explains
    if truth.cause is None:
        assert all(c.description != truth.cause for c in causes)
    else:
        assert causes[0].change_id == cause_id, [c.text() for c in causes]
        assert causes[0].agrees_with == found[0].label


def test_tail_shares_match_a_reference_over_the_events(db):
    """prompt_version 42: its share of the calls above the pre-onset p99 tokens_out and the share
    of its own calls above it, against the same numbers computed from the generated events."""
    scenario, _ = seeded(db, "token_explosion")
    onset, now = scenario.truth.onset, scenario.now
    p99 = reference_percentile((e["tokens_out"] for e in scenario.events
                                if baseline_start(onset, now, LOOKBACK) <= e["ts"] < onset), 99.0)
    start = counts_start(onset, now, LOOKBACK)
    assert start == onset - timedelta(hours=1)
    events = [e for e in scenario.events if start <= e["ts"] < now]
    before = [e for e in events if e["ts"] < onset]
    after = [e for e in events if e["ts"] >= onset and e["tokens_out"] is not None]
    base_rate = (sum(e["tokens_out"] is not None and e["tokens_out"] > p99 for e in before)
                 / sum(e["tokens_out"] is not None for e in before))
    above = Counter(e["prompt_version"] for e in after if e["tokens_out"] > p99)
    excess_total = sum(above.values()) - base_rate * len(after)
    v42 = [e for e in after if e["prompt_version"] == "42"]
    expected_share = (above["42"] - base_rate * len(v42)) / excess_total
    with db.read() as session:
        found = attribute(session, scenario.route, stat="p95_tokens_out", onset=onset, now=now,
                          lookback=LOOKBACK)
    top = found[0]
    assert top.label == "prompt_version 42" and top.prompt_id == "reply"
    assert top.excess_share == pytest.approx(expected_share)
    assert top.rate_after == pytest.approx(above["42"] / len(v42))
    assert top.appeared and top.baseline_share == 0
    first = min(e["ts"] for e in events if e["prompt_version"] == "42")
    assert abs(top.first_seen - aware_utc(first)) < timedelta(milliseconds=1)
    assert f"old p99 tokens_out ({p99:,})" in top.text()
    assert "appeared at the onset, first seen" in top.text()
    # The route's only prompt id holds all the excess and all the traffic: it explains nothing.
    prompt_id = next(a for a in found if a.dimension == "prompt_id")
    assert prompt_id.excess_share == pytest.approx(1.0) and not prompt_id.explains


def test_rate_excess_is_observed_minus_expected_per_value(db):
    """error_code_rate:429 in the 429 storm: each region's excess = its 429s after the onset minus
    the route's pre-onset 429 rate × its calls; the regions' excesses add up to the route's."""
    scenario, _ = seeded(db, "provider_429")
    onset, now = scenario.truth.onset, scenario.now
    start = counts_start(onset, now, LOOKBACK)
    events = [e for e in scenario.events if start <= e["ts"] < now]
    before = [e for e in events if e["ts"] < onset]
    rate0 = sum(e["error_code"] == "429" for e in before) / len(before)
    with db.read() as session:
        found = attribute(session, scenario.route, stat="error_code_rate:429", onset=onset,
                          now=now, lookback=LOOKBACK, limit=100)
    regions = {a.value: a for a in found if a.dimension == "region"}
    for region, attribution in regions.items():
        mine = [e for e in events if e["ts"] >= onset and e["region"] == region]
        expected = sum(e["error_code"] == "429" for e in mine) - rate0 * len(mine)
        assert attribution.excess == pytest.approx(expected)
    assert sum(a.excess_share for a in regions.values()) == pytest.approx(1.0)
    assert found[0].label == "region eu-west-1"


def test_no_change_in_the_window_says_so(db):
    scenario, _ = seeded(db, "latency_spike")
    with db.read() as session:
        causes = likely_causes(session, [scenario.route], onset=scenario.truth.onset)
    assert causes == []
    assert NO_CHANGE == "no recorded change near the onset"


def test_a_named_change_outranks_a_closer_one(db):
    """A deploy at the onset on the same route loses to the prompt change naming v42 a minute
    earlier; without attribution the closer one wins."""
    scenario, cause_id = seeded(db, "token_explosion")
    onset = scenario.truth.onset
    from llm_incident.changes import Change
    with db.write() as session:
        session.add(Change(route=scenario.route, kind="deploy", description="Deploy 3.1",
                           ref="deploy@3.1", ts=onset, recorded_at=onset))
    with db.read() as session:
        found = attribute(session, scenario.route, stat="p95_tokens_out", onset=onset,
                          now=scenario.now, lookback=LOOKBACK)
        ranked = likely_causes(session, [scenario.route], onset=onset, attributions=found)
        blind = likely_causes(session, [scenario.route], onset=onset)
    assert ranked[0].change_id == cause_id and ranked[0].names_value
    assert blind[0].description == "Deploy 3.1"


class _Unmoved:
    def moved(self):
        return []


def _no_other_shift(session, route, *, now, lookback):
    return _Unmoved()


def test_blast_radius_names_the_tier_that_moved(db):
    """quality regression on the free tier: the free tier moved, pro and enterprise did not;
    its flagged rates before/after are the window stats of that tier."""
    scenario, _ = seeded(db, "quality_regression")
    onset, now = scenario.truth.onset, scenario.now
    with db.read() as session:
        blast = blast_radius(session, scenario.route, stat="flagged_rate", onset=onset, now=now,
                             lookback=LOOKBACK, detect=_no_other_shift)
    tiers = {v.value: v for v in blast.values if v.dimension == "customer_tier"}
    assert [v.value for v in blast.affected("customer_tier")] == ["free"]
    span = now - onset
    mine = [e for e in scenario.events if e["customer_tier"] == "free"
            and onset - span <= e["ts"] < onset]
    assert tiers["free"].before == pytest.approx(
        sum(e["status"] == "flagged" for e in mine) / len(mine))
    assert tiers["free"].after > 0.15 and tiers["pro"].after < 0.05
    assert blast.affected_routes() == [scenario.route]


def test_blast_radius_finds_another_route_that_shifted_at_the_same_onset(db):
    """The same token explosion on a second route (same onset) is affected; a quiet route with
    traffic is screened out; the detector runs only on what the screen let through."""
    scenario, _ = seeded(db, "token_explosion")
    twin = generate("token_explosion", 30, 0, route="twin.route")
    quiet = generate("control", 30, 1, route="quiet.route")
    with db.write() as session:
        for other in (twin, quiet):
            session.execute(insert(Event.__table__), other.events)
    detected = []

    def detect(session, route, *, now, lookback):
        detected.append(route)
        return detect_route(session, route, now=now, lookback=lookback)

    with db.read() as session:
        blast = blast_radius(session, scenario.route, stat="p95_tokens_out",
                             onset=scenario.truth.onset, now=scenario.now, lookback=LOOKBACK,
                             detect=detect)
    assert blast.affected_routes() == [scenario.route, "twin.route"]
    assert blast.routes[0].stat == "p95_tokens_out"
    assert abs(blast.routes[0].onset - scenario.truth.onset) <= timedelta(minutes=3)
    assert blast.routes_examined == 2 and detected == ["twin.route"]
