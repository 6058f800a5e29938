"""Block Kit builders, by value: replies → blocks, modals → views, submissions → values."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_incident.commands.forms import start_modal
from llm_incident.commands.replies import (
    Actions,
    Button,
    Confirm,
    FieldKind,
    Modal,
    ModalField,
    Note,
    Reply,
    Section,
    Table,
)
from llm_incident.incidents.models import Incident
from llm_incident.slack import blocks
from llm_incident.slack.dedupe import request_key
from llm_incident.slack.home import home_view

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def md(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def pt(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


# -- text -----------------------------------------------------------------------------------------

def test_escape_keeps_slack_entities_and_escapes_the_rest():
    text = "a < b && c > d <@U123> <#C9|war-room> <!here> <https://x.test/a?b=1|the link> <script>"
    assert blocks.escape(text) == (
        "a &lt; b &amp;&amp; c &gt; d <@U123> <#C9|war-room> <!here> "
        "<https://x.test/a?b=1|the link> &lt;script&gt;")


def test_fit_cuts_with_an_ellipsis_never_inside_an_entity_or_escape():
    assert blocks.fit("short", 10) == "short"
    assert blocks.fit("abcdefghijkl", 10) == "abcdefghi…"
    assert blocks.fit("hello <@U12345678>", 12) == "hello …"
    assert blocks.fit("hello &amp; bye", 10) == "hello …"


# -- message blocks -------------------------------------------------------------------------------

def test_section_with_title_text_and_fields():
    reply = Reply(text="card", blocks=(
        Section(title="Incident #3 — slow", text="it's *slow*", fields=(("Status", "open"),
                                                                        ("Routes", "`a.b`"))),))
    assert blocks.render_blocks(reply) == [{
        "type": "section",
        "text": md("*Incident #3 — slow*\nit's *slow*"),
        "fields": [md("*Status*\nopen"), md("*Routes*\n`a.b`")],
    }]


def test_more_than_ten_fields_continue_in_another_section_and_long_fields_are_cut():
    fields = tuple((f"f{i}", "x" * (2500 if i == 0 else 1)) for i in range(13))
    out = blocks.section_blocks(Section(fields=fields))
    assert [len(b["fields"]) for b in out] == [10, 3]
    assert "text" not in out[0]
    first = out[0]["fields"][0]["text"]
    assert len(first) == 2000 and first.endswith("…")


def test_long_text_is_split_at_line_breaks_into_sections_within_3000():
    lines = [f"line {i:04d} " + "y" * 80 for i in range(100)]
    out = blocks.section_blocks(Section(title="Timeline", text="\n".join(lines)))
    assert len(out) > 1 and all(len(b["text"]["text"]) <= 3000 for b in out)
    joined = "\n".join(b["text"]["text"] for b in out)
    assert joined == "*Timeline*\n" + "\n".join(lines)


def test_a_single_huge_line_is_truncated_not_rejected():
    out = blocks.section_blocks(Section(text="z" * 10_000))
    assert len(out) == 1 and len(out[0]["text"]["text"]) == 3000
    assert out[0]["text"]["text"].endswith("…")


def test_table_is_a_monospaced_code_block():
    table = Table(header=("stat", "now"), rows=(("p95 <ms>", "1,200"), ("calls", "3")),
                  title="Metrics")
    assert blocks.render_blocks(Reply(text="t", blocks=(table,))) == [{
        "type": "section",
        "text": md("*Metrics*\n```\nstat      now\n--------  -----\np95 &lt;ms&gt;  1,200\n"
                   "calls     3\n```"),
    }]


def test_big_table_splits_with_the_header_repeated_and_fences_are_neutralised():
    rows = tuple((f"r{i}", "v```" + "w" * 60) for i in range(120))
    out = blocks.table_blocks(Table(header=("name", "value"), rows=rows, title="Big"))
    assert len(out) > 1
    for n, block in enumerate(out):
        text = block["text"]["text"]
        assert len(text) <= 3000
        body = text.split("```\n", 1)[1]
        assert body.startswith("name") and text.endswith("\n```")
        assert text.count("```") == 2 and (n == 0) == text.startswith("*Big*")
    assert sum(b["text"]["text"].count("\nr") for b in out) == 120


def test_actions_carry_the_command_style_and_native_confirm():
    reply = Reply(text="x", blocks=(Actions((
        Button("Close incident", "close #3", style="danger",
               confirm=Confirm("Close incident?", "Close incident #3?", ok="Close it")),
        Button("Metrics", "metrics support.reply 1h"),
    )),))
    assert blocks.render_blocks(reply) == [{"type": "actions", "elements": [
        {"type": "button", "action_id": "llm_incident.run.0", "text": pt("Close incident"),
         "value": "close #3", "style": "danger",
         "confirm": {"title": pt("Close incident?"), "text": pt("Close incident #3?"),
                     "confirm": pt("Close it"), "deny": pt("Cancel"), "style": "danger"}},
        {"type": "button", "action_id": "llm_incident.run.1", "text": pt("Metrics"),
         "value": "metrics support.reply 1h"},
    ]}]


def test_buttons_past_limits_are_split_or_dropped_never_truncated():
    many = tuple(Button(f"b{i}", f"status {i}") for i in range(30))
    out = blocks.render_blocks(Reply(text="x", blocks=(Actions(many),)))
    assert [len(b["elements"]) for b in out] == [25, 5]
    assert {e["action_id"] for b in out for e in b["elements"]} == {
        f"llm_incident.run.{i}" for i in range(30)}
    long = Button("x" * 100, "status " + "s" * 2000)
    out = blocks.render_blocks(Reply(text="fallback", blocks=(Actions((long,)),)))
    assert out == [{"type": "section", "text": md("fallback")}]


def test_note_is_a_context_block_and_empty_reply_uses_its_text():
    assert blocks.render_blocks(Reply(text="t", blocks=(Note("updated <now>"),))) == [
        {"type": "context", "elements": [md("updated &lt;now&gt;")]}]
    assert blocks.render_blocks(Reply(text="only text & more")) == [
        {"type": "section", "text": md("only text &amp; more")}]


def test_at_most_fifty_blocks_and_the_last_says_what_is_missing():
    reply = Reply(text="x", blocks=tuple(Section(text=f"s{i}") for i in range(80)))
    out = blocks.render_blocks(reply)
    assert len(out) == 50
    assert out[-1] == {"type": "context", "elements": [
        md("… 31 more block(s) not shown: the message was too long")]}


def test_message_has_escaped_fallback_text_and_blocks():
    msg = blocks.message(Reply(text="ok <b> & " + "x" * 5000, blocks=(Note("n"),)))
    assert msg["text"].startswith("ok &lt;b&gt; &amp; ") and len(msg["text"]) == 3000
    assert msg["blocks"] == [{"type": "context", "elements": [md("n")]}]


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=4000)
parts = st.one_of(
    st.builds(Section, text=texts, title=st.none() | st.text(max_size=200),
              fields=st.lists(st.tuples(st.text(max_size=50), texts), max_size=14).map(tuple)),
    st.builds(Table, header=st.just(("a", "b")),
              rows=st.lists(st.tuples(st.text(max_size=100), st.text(max_size=100)),
                            max_size=80).map(tuple)),
    st.builds(Note, text=texts),
    st.builds(Actions, buttons=st.lists(st.builds(Button, label=st.text(max_size=100),
                                                  command=st.text(max_size=2100)),
                                        max_size=30).map(tuple)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(parts, max_size=40), texts)
def test_any_reply_stays_within_slack_limits(body, text):
    msg = blocks.message(Reply(text=text, blocks=tuple(body)))
    assert 1 <= len(msg["blocks"]) <= 50 and len(msg["text"]) <= 3000
    for block in msg["blocks"]:
        if block["type"] == "section":
            assert "text" in block or block.get("fields")
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        elif block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            assert all(len(e["value"]) <= 2000 and len(e["text"]["text"]) <= 75
                       for e in block["elements"])
        else:
            assert block["type"] == "context" and len(block["elements"][0]["text"]) <= 3000
    json.dumps(msg)


# -- modals ---------------------------------------------------------------------------------------

def test_start_modal_as_a_view():
    view = blocks.modal_view(start_modal(["search.summarize", "support.reply"]),
                             private_metadata='{"channel":"C1"}')
    assert view["type"] == "modal" and view["callback_id"] == "llm_incident.modal.start"
    assert view["title"] == pt("Start an LLM incident") and view["submit"] == pt("Start")
    assert view["private_metadata"] == '{"channel":"C1"}'
    by_id = {b["block_id"]: b for b in view["blocks"]}
    assert list(by_id) == ["symptom", "incident_class", "routes", "envs", "customer_tiers",
                           "severity", "since"]
    assert by_id["since"]["optional"] is True
    assert by_id["symptom"] == {
        "type": "input", "block_id": "symptom", "label": pt("Symptom"), "optional": False,
        "element": {"type": "plain_text_input", "action_id": "value", "max_length": 3000,
                    "multiline": True},
        "hint": pt("What users see, e.g. 'support.reply answers are 8x longer'")}
    klass = by_id["incident_class"]["element"]
    assert klass["type"] == "static_select" and klass["initial_option"] == {
        "text": pt("unknown"), "value": "unknown"}
    assert [o["value"] for o in klass["options"]] == ["quality", "latency", "cost", "provider",
                                                      "unknown"]
    routes = by_id["routes"]
    assert routes["optional"] is True and routes["element"]["type"] == "multi_static_select"
    assert routes["element"]["options"] == [
        {"text": pt("search.summarize"), "value": "search.summarize"},
        {"text": pt("support.reply"), "value": "support.reply"}]


def test_modal_without_route_options_asks_for_text_and_can_ask_for_a_channel():
    view = blocks.modal_view(start_modal([]), ask_channel=True)
    assert view["private_metadata"] == ""
    assert view["blocks"][0]["block_id"] == blocks.CHANNEL_BLOCK
    assert view["blocks"][0]["element"]["type"] == "conversations_select"
    routes = next(b for b in view["blocks"] if b["block_id"] == "routes")
    assert routes["element"]["type"] == "plain_text_input"
    assert routes["hint"] == pt("Several: separate with commas.")


def test_modal_limits_title_options_and_metadata():
    modal = Modal(kind="k", title="A title that is far too long for Slack", context="ctx",
                  fields=(ModalField("f", "F", FieldKind.select,
                                     options=("ok", "x" * 151, *(f"o{i}" for i in range(120))),
                                     initial=("o1",)),))
    view = blocks.modal_view(modal)
    assert view["title"]["text"] == "A title that is far too…" and len(view["title"]["text"]) == 24
    assert view["private_metadata"] == "ctx"
    options = view["blocks"][0]["element"]["options"]
    assert len(options) == 100 and all(len(o["value"]) <= 150 for o in options)
    assert "initial_option" not in view["blocks"][0]["element"]
    with pytest.raises(ValueError, match="3000"):
        blocks.modal_view(modal, private_metadata="m" * 3001)


def test_view_values_reads_every_element_kind():
    view = {"state": {"values": {
        "symptom": {"value": {"type": "plain_text_input", "value": "It said \"hi\" 🔥"}},
        "empty": {"value": {"type": "plain_text_input", "value": None}},
        "klass": {"value": {"type": "static_select", "selected_option": {"value": "cost"}}},
        "none": {"value": {"type": "static_select", "selected_option": None}},
        "routes": {"value": {"type": "multi_static_select",
                             "selected_options": [{"value": "a"}, {"value": "b"}]}},
        "chan": {"value": {"type": "conversations_select", "selected_conversation": "C1"}},
    }}}
    assert blocks.view_values(view) == {"symptom": "It said \"hi\" 🔥", "empty": "", "klass": "cost",
                                        "none": "", "routes": ["a", "b"], "chan": "C1"}
    assert blocks.modal_kind("llm_incident.modal.start") == "start"


def test_validation_flags_blank_required_inputs_only():
    view = blocks.modal_view(start_modal(["a.b"]))
    view["state"] = {"values": {"symptom": {"value": {"type": "plain_text_input", "value": "  "}},
                                "incident_class": {"value": {"type": "static_select",
                                                             "selected_option": {"value": "cost"}}},
                                "severity": {"value": {"type": "static_select",
                                                       "selected_option": None}}}}
    assert blocks.validation_errors(view) == {"symptom": "Symptom is required.",
                                              "severity": "Severity is required."}


# -- request keys and home ------------------------------------------------------------------------

def test_request_keys_are_stable_per_user_action():
    assert request_key({"event_id": "Ev1", "type": "event_callback"}) == "slack:event:Ev1"
    assert request_key({"command": "/llm-incident", "trigger_id": "1.2.x"}) == "slack:command:1.2.x"
    action = {"type": "block_actions", "trigger_id": "9.9", "actions": [{"action_id": "a.1"}]}
    assert request_key(action) == "slack:block_actions:9.9:a.1"
    hashed = request_key({"type": "view_submission"}, "raw body")
    assert hashed.startswith("slack:view_submission:sha256:") and hashed == request_key(
        {"type": "view_submission"}, "raw body")


def _incident(number: int, **kw) -> Incident:
    values = dict(number=number, incident_class="cost", severity="sev2", status="open",
                  symptom="tokens <exploding>", routes=["support.reply"], commander="U1",
                  channel_id="C9", started_at=NOW - timedelta(minutes=90), updated_at=NOW)
    values.update(kw)
    return Incident(**values)


def test_home_lists_open_incidents_with_a_start_button():
    view = home_view([_incident(4)], now=NOW)
    assert view["type"] == "home"
    texts = [b.get("text", {}).get("text", "") for b in view["blocks"]]
    assert any("*#4* 🔴 open · cost · sev2 — tokens &lt;exploding&gt;" in t for t in texts)
    assert any("open for 1h 30m · <#C9>" in t for t in texts)
    start = next(b for b in view["blocks"] if b["type"] == "actions")["elements"][0]
    assert start["value"] == "start" and start["style"] == "primary"
    assert not any("mitigations" in t for t in texts)


def test_home_shows_mitigations_only_when_there_are_some():
    view = home_view([], now=NOW, mitigations={"support.reply": ["kill switch on"], "b": []})
    texts = [b.get("text", {}).get("text", "") for b in view["blocks"]]
    assert "*Routes with active mitigations*\n• `support.reply`: kill switch on" in texts
    assert "*Open incidents*\nNone right now. 🎉" in texts
