"""The close's postmortem posts: within Slack's limits, Restore buttons only where `restore` acts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llm_incident.commands.postmortem_posts import still_active_reply, summary_reply
from llm_incident.commands.replies import Actions
from llm_incident.incidents.postmortem_model import ActiveMitigation, Postmortem, RouteMetrics
from llm_incident.slack import blocks

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def postmortem(routes: int = 1, **extra) -> Postmortem:
    names = [f"route.{i}" for i in range(routes)]
    return Postmortem(
        number=7, symptom="tokens exploding", incident_class="cost", severity="sev2",
        status="closed", commander="U1", routes=names, envs=[], customer_tiers=[],
        started_at=T0, closed_at=T0 + timedelta(minutes=42), as_of=T0 + timedelta(minutes=42),
        first_mitigation_at=T0 + timedelta(minutes=12), summary="clamp held",
        metrics=[RouteMetrics(n, None, None, None) for n in names],
        follow_ups=[f"follow-up {i}" for i in range(30)], **extra)


def test_the_summary_fits_one_message_even_with_many_routes():
    message = blocks.message(summary_reply(postmortem(routes=60)))
    assert len(message["blocks"]) <= blocks.MAX_BLOCKS
    assert all(len((b.get("text") or {}).get("text", "")) <= blocks.MAX_TEXT
               for b in message["blocks"])
    text = str(message)
    assert "42m" in text and "12m" in text and "follow-up 7" in text and "follow-up 8" not in text


def test_restore_buttons_only_for_prod_routes_and_none_when_nothing_is_left():
    assert still_active_reply(postmortem(), {}) is None
    pm = postmortem(still_active=[ActiveMitigation("a", "prod", "killed"),
                                  ActiveMitigation("b", "staging", "max_tokens clamped to 800")])
    reply = still_active_reply(pm, {"a": 3})
    [actions] = [b for b in reply.blocks if isinstance(b, Actions)]
    assert [b.command for b in actions.buttons] == ["restore a @v3 after-close"]
    assert actions.buttons[0].confirm is not None
    assert "`b` (staging): max_tokens clamped to 800" in reply.blocks[0].text
