"""Slack sends `&`, `<`, `>` in a slash command's text as `&amp;`, `&lt;`, `&gt;` (its one escaping
for all text); through the real signed HTTP endpoint (both backends) the command core sees them
as typed: filters compare with `>` and `<`, free text keeps `<v42> & co`, a typed `&lt;` stays."""

from __future__ import annotations

import re

import pytest

from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack


def slack_escaped(text: str) -> str:
    """What Slack puts in the payload's `text` for `text` typed by a user."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture
def env(db):
    seed(db)
    with FakeSlack() as slack, slack_server(db, slack) as env:
        yield env


def _event_ids(message: dict) -> list[str]:
    return re.findall(r"seed-s[rs]-\d+", texts(message))


def test_a_filter_with_comparisons_arrives_as_typed(env):
    assert slack_escaped("tokens_out > 2000") == "tokens_out &gt; 2000"
    env.sender.command(slack_escaped("events tokens_out > 2000 limit 5"), response="gt")
    above = env.response("gt")
    assert "bad filter" not in texts(above).lower()
    ids = _event_ids(above)
    assert len(ids) == 5 and all(i.startswith("seed-sr-") for i in ids)  # only 2400-token calls
    env.sender.command(slack_escaped('events tokens_out < 200 AND route = "search.summarize" '
                                     "limit 3"), response="lt")
    below = _event_ids(env.response("lt"))
    assert len(below) == 3 and all(i.startswith("seed-ss-") for i in below)
    env.sender.command(slack_escaped("events tokens_out > limit 3"), response="bad")
    # the parser saw `>` (escaped once again for Slack in the answer, never twice)
    assert "expected a value after '&gt;'" in texts(env.response("bad"))
    assert "&amp;" not in texts(env.response("bad"))


def test_free_text_keeps_angle_brackets_ampersands_and_typed_entities(env):
    env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM)
    root = env.root(INCIDENTS)
    env.thread(root, opening_thread(routes=1))
    typed = "rolled back <v42> & clamped; see &lt;PR&gt; (typed as entities)"
    env.sender.command(slack_escaped(f"status {typed}"), channel=WAR_ROOM, response="s")
    assert env.response("s")["text"] == "Status posted to incident #1."
    (entry,) = [e.text for e in env.timeline(1) if e.kind == "status"]
    assert entry == typed
    assert not env.slack.invalid
