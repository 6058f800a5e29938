"""Any text, any channel/user/team name, through the real signed endpoint: always handled.

slack-bolt parses a form body containing the substring "payload" as interactivity; our HTTP
adapter parses the form itself (slack/http_request.py), for every request kind.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_incident.slack.http_request import BadSlackBody, parse_slack_body
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack
from tests.slackpayloads import TEAM

SPECIAL = ["payload", "payload=", "payload={}", "&payload=x", "{", '{"type":"x"}', "command=",
           "%00", "\x00", "&", "=", "+", "%", "ssl_check=1", "type=url_verification"]
words = st.one_of(st.sampled_from(SPECIAL), st.text(min_size=1, max_size=30))
phrases = st.lists(words, min_size=0, max_size=5).map(" ".join)
names = st.one_of(st.sampled_from(["payload-team", "payloadbot", "payload-inc", "payload"]),
                  st.text(min_size=0, max_size=40))
# verbs whose answer is always a message to the user (no form, no incident side effects)
VERBS = ["help", "list", "status", "events", "controls", "attach", "metrics", "bogus", ""]
_n = itertools.count()
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def env(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        yield env


@pytest.mark.parametrize("text", ["status payload sizes tripled", "help payload",
                                  "events metadata.payload exists"])
def test_commands_with_the_word_payload_run(env, text):
    env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                       response="start")
    env.response("start")
    response = env.sender.command(text, channel=INCIDENTS, response="word")
    assert response.status_code == 200, response.text
    answer = env.response("word")
    assert "unknown command" not in texts(answer) and "went wrong" not in texts(answer)
    if text.startswith("status"):
        assert answer["text"] == "Status posted to incident #1."


@given(verb=st.sampled_from(VERBS), text=phrases, channel_name=names, user_name=names,
       team_domain=names)
@EXAMPLES
def test_any_command_text_and_names_get_a_200_and_a_reply(env, verb, text, channel_name,
                                                           user_name, team_domain):
    name = f"any{next(_n)}"
    response = env.sender.command(f"{verb} {text}".strip(), channel=WAR_ROOM, response=name,
                                  channel_name=channel_name, user_name=user_name,
                                  team_domain=team_domain)
    assert response.status_code == 200, response.text
    answer = env.response(name)
    assert "Something went wrong" not in answer["text"], answer


@given(user_name=names, channel_name=names, message_text=phrases)
@EXAMPLES
def test_any_names_in_a_shortcut_get_an_answer(env, user_name, channel_name, message_text):
    name = f"sc{next(_n)}"
    response = env.sender.interactive(env.sender.shortcut_payload(
        message_text, channel=WAR_ROOM, user_name=user_name, channel_name=channel_name,
        response=name, team={**TEAM, "domain": channel_name}))
    assert response.status_code == 200, response.text
    assert env.response(name)["text"]  # no open incident / no ids found: said, not dropped


def test_buttons_forms_and_events_from_payload_named_places_are_handled(env):
    env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                       response="start", channel_name="payload-team", user_name="payloadbot",
                       team_domain="payload-inc")
    env.response("start")
    root = env.root(INCIDENTS)
    posts = env.thread(root, opening_thread(routes=1))
    panel = next(p for p in posts if p["text"] == "Mitigations for support.reply")
    kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["text"]["text"] == "Kill route")
    message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
               "blocks": panel["blocks"]}
    payload = env.sender.button_payload(kill, message=message, channel=INCIDENTS,
                                        user="U0PAYLOAD", response="kill")
    payload["user"]["username"] = "payload"
    payload["channel"]["name"] = "payload-team"
    assert env.sender.interactive(payload).status_code == 200
    assert "killed `support.reply`" in env.response("kill")["text"]
    response = env.sender.event({"type": "app_home_opened", "user": "U0PAYLOAD", "tab": "home",
                                 "channel": "D0PAYLOAD", "text": "payload"})
    assert response.status_code == 200
    env.slack.wait_for(lambda: env.slack.calls("views.publish"), what="App Home published")


def test_a_body_that_is_not_a_slack_request_is_a_400_not_a_500(env):
    for body, kind in [("payload=not-json", "application/x-www-form-urlencoded"),
                       ("payload=%5B1%5D", "application/x-www-form-urlencoded"),
                       ("[1, 2]", "application/json"), ("{oops", "application/json")]:
        response = env.sender.send(body, kind)
        assert response.status_code == 400, (body, response.text)
        assert "not a Slack request" in response.json()["error"]


@pytest.mark.parametrize("body, expected", [
    ("text=payload&command=%2Fllm-incident", {"text": "payload", "command": "/llm-incident"}),
    ("payload=%7B%22type%22%3A%22block_actions%22%7D", {"type": "block_actions"}),
    ('{"type": "event_callback"}', {"type": "event_callback"}),
    ("", {}),
])
def test_parse_slack_body_by_keys_not_substrings(body, expected):
    assert parse_slack_body(body, "application/x-www-form-urlencoded") == expected


def test_parse_slack_body_rejects_what_is_not_an_object():
    with pytest.raises(BadSlackBody, match="payload field is not a JSON object"):
        parse_slack_body("payload=%5B%5D", None)
