"""Suggested mitigations, change naming, the attribution ranking and the blast "moved" rule —
the pure parts of triage."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from llm_incident.commands.parse import ChangeControl, parse_command
from llm_incident.metrics.stats import WindowStats
from llm_incident.triage.ranking import Attribution, Cells, Measure, rank
from llm_incident.triage.blast import moved_like
from llm_incident.triage.cause import Cause, names
from llm_incident.triage.suggest import (Alternatives, Evidence, Health, round_up,
                                         suggestions)

T0 = datetime(2026, 11, 26, 19, 0, tzinfo=timezone.utc)
ROUTE = "support.reply"


def _stats(**values) -> WindowStats:
    return WindowStats(route=ROUTE, start=T0, end=T0, **values)


def _attribution(dimension: str, value: str, score: float, prompt_id: str | None = None):
    return Attribution(dimension=dimension, value=value, stat="p95_tokens_out", kind="tail",
                       excess=100.0, excess_share=score, baseline_share=0.0, share_after=1.0,
                       rate_before=None, rate_after=0.9, calls_before=0, calls_after=100,
                       score=score, appeared=True, first_seen=T0, prompt_id=prompt_id)


def _cause(kind: str, ref: str, agrees: str | None) -> Cause:
    return Cause(1, ROUTE, kind, "Prompt reply v42", ref, None, T0, 1.0, agrees, True, 3.0)


def _evidence(klass: str, rising: set[str], **kwargs) -> Evidence:
    values = dict(route=ROUTE, incident_class=klass, rising=rising,
                  baseline=_stats(retry_share=0.01, flagged_rate=0.01),
                  current=_stats(retry_share=0.01, flagged_rate=0.01),
                  p99_tokens_out_before=652.0)
    values.update(kwargs)
    return Evidence(**values)


@pytest.mark.parametrize("tokens, rounded", [(652, 700), (700, 700), (701, 800), (40, 100),
                                             (1840, 2000), (9999, 10_000), (12_001, 13_000)])
def test_round_up(tokens, rounded):
    assert round_up(tokens) == rounded


def test_token_explosion_from_a_prompt_clamps_and_rolls_back():
    prompt = _attribution("prompt_version", "42", 1.0, prompt_id="reply")
    ev = _evidence("cost", {"p95_tokens_out", "p95_duration_ms"}, attributions=[prompt],
                   causes=[_cause("prompt", "prompts/reply@v42", prompt.label)],
                   alternatives=Alternatives(
                       models=[Health("gpt-4o", 500, 0, 900.0, 900.0)],
                       route_before={"model": ["gpt-4o-mini"]},
                       route_after={"model": ["gpt-4o-mini"]},
                       prompt_versions_before={"reply": "41"}))
    made = suggestions(ev)
    assert [s.kind for s in made] == ["clamp", "rollback"]  # a prompt explains it: no switch
    clamp, rollback = made
    assert clamp.text == "clamp max_tokens to 700 (pre-onset p99 tokens_out 652, rounded up)"
    assert clamp.command == "/llm-incident clamp support.reply 700"
    assert rollback.command is None
    assert rollback.text == ("roll back prompt reply version 42 to version 41 — the change: "
                             "prompts/reply@v42")


def test_every_printed_command_parses_to_its_control():
    model = _attribution("model", "gpt-4o", 0.7)
    ev = _evidence("latency", {"p95_duration_ms", "p95_tokens_out", "retry_share"},
                   attributions=[model],
                   current=_stats(retry_share=0.2, flagged_rate=0.3),
                   alternatives=Alternatives(
                       models=[Health("gpt-4o", 300, 0, 4000.0, 1000.0),
                               Health("gpt-4o-mini", 700, 1, 900.0, 880.0)],
                       providers=[Health("openai", 1000, 1, 1900.0, 900.0),
                                  Health("anthropic", 200, 0, 1000.0, 1000.0)],
                       route_before={"model": ["gpt-4o-mini", "gpt-4o"],
                                     "provider": ["openai"]},
                       route_after={"model": ["gpt-4o-mini", "gpt-4o"],
                                    "provider": ["openai"]}))
    made = suggestions(ev)
    assert [s.kind for s in made] == ["model", "provider", "clamp", "retries", "kill"]
    values = {s.kind: s.value for s in made}
    assert values == {"model": "gpt-4o-mini", "provider": "anthropic", "clamp": 700,
                      "retries": 1, "kill": None}
    for s in made:
        parsed = parse_command(s.command.removeprefix("/llm-incident "))
        assert parsed == ChangeControl(s.kind, ROUTE, value=s.value)


def test_an_unhealthy_or_slower_alternative_is_not_offered():
    ev = _evidence("provider", {"error_code_rate:429"},
                   alternatives=Alternatives(
                       providers=[Health("openai", 900, 300, 500.0, 500.0),
                                  Health("anthropic", 100, 10, 500.0, 500.0),  # 10 % errors
                                  Health("mistral", 100, 0, 900.0, 500.0),  # 1.8× slower
                                  Health("self", 10, 0, 500.0, 500.0)],  # too few calls
                       route_before={"provider": ["openai"]},
                       route_after={"provider": ["openai"]}))
    assert [s.kind for s in suggestions(ev)] == []


def test_kill_and_retries_thresholds():
    quiet = _evidence("quality", set(), current=_stats(flagged_rate=0.099, retry_share=0.05))
    assert suggestions(quiet) == []
    loud = _evidence("quality", set(), current=_stats(flagged_rate=0.10, retry_share=0.061))
    assert [s.kind for s in suggestions(loud)] == ["kill", "retries"]


def test_a_route_that_always_flagged_that_much_gets_no_kill():
    steady = _evidence("quality", set(), baseline=_stats(flagged_rate=0.10),
                       current=_stats(flagged_rate=0.11))
    assert [s.kind for s in suggestions(steady)] == []
    worse = _evidence("quality", set(), baseline=_stats(flagged_rate=0.10),
                      current=_stats(flagged_rate=0.13))
    [kill] = suggestions(worse)
    assert kill.kind == "kill" and "10.0 % before" in kill.text


@pytest.mark.parametrize("text, value, expected", [
    ("Prompt reply v42: answers now include full citations", "42", True),
    ("prompts/reply@v42", "42", True),
    ("prompt_version=42.", "42", True),
    ("bump to v1.42.0", "42", False),
    ("v420 shipped", "42", False),
    ("Default model gpt-4o-mini → gpt-4o for most traffic", "gpt-4o", True),
    ("Default model gpt-4o-mini", "gpt-4o", False),
    ("Moderation thresholds relaxed for the free tier", "free", True),
    ("anything", "unknown", False),
])
def test_names(text, value, expected):
    assert names(text, value) is expected


def _cells(rows) -> Cells:
    """rows: (dims, after, calls, num)."""
    cells = Cells(minutes=(60.0, 30.0))
    for dims, after, calls, num in rows:
        full = {"model": "m1", "provider": "p1", "prompt_id": "reply", "prompt_version": "41",
                "region": "us", "env": "prod", "customer_tier": "free", **dims}
        cells.add_row(full, after, calls, float(num), float(calls), T0)
    return cells


def test_rank_prefers_the_value_whose_excess_outgrows_its_traffic():
    """Rate stat; tier pro holds 30 % of the traffic before and after and all of the new
    flagged calls: it ranks first, env prod (all traffic, all excess) scores 0."""
    rows = [({"customer_tier": "free"}, False, 700, 7), ({"customer_tier": "pro"}, False, 300, 3),
            ({"customer_tier": "free"}, True, 350, 3), ({"customer_tier": "pro"}, True, 150, 60)]
    ranked = rank(_cells(rows), Measure("flagged_rate", "rate", None, None))
    top = ranked[0]
    assert top.label == "customer_tier pro"
    # excess = 60 - 0.01 * 150 = 58.5 of a total 63 - 0.01 * 500 = 58
    assert top.excess == pytest.approx(58.5)
    assert top.excess_share == pytest.approx(58.5 / 58)
    assert top.baseline_share == pytest.approx(0.3)
    env = next(a for a in ranked if a.dimension == "env")
    assert env.excess_share == pytest.approx(1.0) and env.score == pytest.approx(0.0)
    assert not env.explains and top.explains


def test_rank_ties_go_to_the_dimension_order_and_no_excess_gives_nothing():
    """A model that is all of a provider's calls ties with it: the model ranks first."""
    rows = [({"model": "m1", "provider": "p1"}, False, 800, 8),
            ({"model": "m2", "provider": "p2"}, False, 200, 2),
            ({"model": "m1", "provider": "p1"}, True, 400, 4),
            ({"model": "m2", "provider": "p2"}, True, 100, 50)]
    ranked = rank(_cells(rows), Measure("error_rate", "rate", None, None))
    assert [a.label for a in ranked[:2]] == ["model m2", "provider p2"]
    flat = [({}, False, 1000, 10), ({}, True, 500, 5)]
    assert rank(_cells(flat), Measure("error_rate", "rate", None, None)) == []


def test_volume_excess_is_against_the_baseline_calls_per_minute():
    """calls_per_min: 60 min before, 30 after; tier pro triples, free stays."""
    rows = [({"customer_tier": "free"}, False, 600, 600), ({"customer_tier": "pro"}, False, 600, 600),
            ({"customer_tier": "free"}, True, 300, 300), ({"customer_tier": "pro"}, True, 900, 900)]
    ranked = rank(_cells(rows), Measure("calls_per_min", "volume", None, None))
    assert ranked[0].label == "customer_tier pro"
    assert ranked[0].excess == pytest.approx(600) and ranked[0].excess_share == pytest.approx(1)


@pytest.mark.parametrize("stat, route_move, before, after, moved", [
    ("flagged_rate", 0.20, 0.01, 0.25, True),
    ("flagged_rate", 0.20, 0.01, 0.05, False),   # 4 pts of the route's 20
    ("p95_tokens_out", 1.386, 250.0, 1000.0, True),
    ("p95_tokens_out", 1.386, 250.0, 300.0, False),
    ("p95_tokens_out", 1.386, 250.0, 100.0, False),  # moved the other way
    ("p95_tokens_out", None, 250.0, 1000.0, False),
])
def test_moved_like(stat, route_move, before, after, moved):
    assert moved_like(stat, route_move, before, after) is moved
