"""Route pages over ranges past LLM_INCIDENT_EXACT_WINDOW_MAX through the real server (both
backends): charts read from the rollups mark their percentiles `≈` (exact ones carry no mark), and
top prompts by cost, which the rollups do not keep, are read over the most recent exact window only
and the page says so."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.events.ingest import ingest_events
from llm_incident.metrics.rollup_stats import set_exact_window_max
from llm_incident.rollups.build import roll_up
from tests.dashboard_seed import NOW, REGRESSING, seed
from tests.support import live_server, settings_for

READ_KEY = "read-key-0123456789"
OLD_PROMPT = "summary-v0"  # costly calls 10 h ago: inside 24 h, outside the 6 h exact window
BOX = re.compile(r'<div class="chart-box" data-stat="([a-z0-9_]+)"><h3>(.*?)</h3>', re.S)


def _old_costly_calls(db) -> None:
    events = [{"event_id": f"old-{i}", "route": REGRESSING, "model": "gpt-4o-mini",
               "ts": (NOW - timedelta(hours=10, minutes=i)).isoformat(), "tokens_in": 100,
               "tokens_out": 100, "duration_ms": 500.0, "prompt_id": OLD_PROMPT,
               "prompt_version": "3", "cost_usd": 5.0} for i in range(5)]
    with db.write() as session:
        assert ingest_events(session, events, now=NOW).accepted == len(events)


@pytest.fixture
def site(db):
    seed(db)
    _old_costly_calls(db)
    settings = settings_for(db, api_keys=[f"read:{READ_KEY}"])
    with live_server(create_app(settings, database=db, clock=lambda: NOW)) as url:
        yield url


def _page(site: str, rng: str) -> str:
    answer = httpx.get(f"{site}/routes/{REGRESSING}", params={"range": rng}, timeout=30,
                       headers={"Authorization": f"Bearer {READ_KEY}"})
    assert answer.status_code == 200
    return answer.text


def _marked(html: str) -> list[str]:
    return [stat for stat, title in BOX.findall(html) if 'class="approx"' in title]


def _prompts(html: str) -> list[str]:
    table = re.search(r'<table id="prompts">(.*?)</table>', html, re.S)[1]
    return re.findall(r"<tr><td>([^<]+)</td>", table)


def test_charts_from_rollups_mark_their_percentiles(site, db):
    assert _marked(_page(site, "24h")) == []  # not rolled up yet: the exact path, no mark
    roll_up(db, NOW + timedelta(minutes=5))
    for rng in ("24h", "7d", "30d"):
        assert _marked(_page(site, rng)) == ["p95_duration_ms", "p95_tokens_out"], rng
    for rng in ("1h", "6h"):  # within the exact window: raw events, exact
        assert _marked(_page(site, rng)) == [], rng


def test_top_prompts_past_the_exact_window_read_its_last_6h_and_say_so(site, db):
    roll_up(db, NOW + timedelta(minutes=5))
    six = _page(site, "6h")
    assert _prompts(six) == ["reply-v2"] and 'id="prompts-window"' not in six
    day = _page(site, "24h")
    assert _prompts(day) == ["reply-v2"]  # the costlier old prompt is outside the last 6 h
    note = re.search(r'<p class="note" id="prompts-window">(.*?)</p>', day, re.S)[1]
    assert note.startswith("Top prompts over the last 6h only (11-26 08:00–14:00 UTC)")
    assert "Top prompts by cost (last 6h)" in day
    models = re.search(r'<table id="models">(.*?)</table>', day, re.S)[1]
    assert re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", models) == [
        ("gpt-4o-mini", "125")]  # the model mix is the whole range's (from the rollups)
    set_exact_window_max(timedelta(days=1))
    try:
        exact_day = _page(site, "24h")  # 24 h now counts as exact: every event is read
    finally:
        set_exact_window_max(None)
    assert _prompts(exact_day) == [OLD_PROMPT, "reply-v2"]
    assert 'id="prompts-window"' not in exact_day and _marked(exact_day) == []
