"""The console prints what the scheduler does (checks, expiries) as it happens, leaves out the
runbook/Triage redraws, answers `postmortem`/`export`/`help` itself, and says what a stale button
lost to. Through the Shell and the real jobs, on both backends."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta, timezone

from llm_incident.commands.replies import Post, Reply, Target
from llm_incident.console.feed import ConsoleFeed
from llm_incident.console.shell import CHANNEL, PROMPT, Shell, scheduled_news
from llm_incident.demo import seed_demo
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.expiry import revert_expired_controls
from llm_incident.scheduler.mitigation_check import check_mitigations

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def console(db, feed: ConsoleFeed | None = None, at: datetime = NOW,
            **kw) -> tuple[Shell, io.StringIO]:
    out = io.StringIO()
    clock = kw.pop("clock", lambda: at)
    return Shell(db, user="ana", out=out, clock=clock, feed=feed, **kw), out


def seeded(db):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)


def test_a_mitigation_check_prints_in_the_console_with_the_updated_card(db):
    seeded(db)
    feed = ConsoleFeed()
    shell, out = console(db, feed)
    shell.handle_line("start support.reply cost tokens exploding")
    shell.handle_line("clamp support.reply 800")
    before = out.getvalue()
    assert check_mitigations(JobContext(db=db, delivery=feed), NOW + 6 * MIN)
    shell.show_pending()
    printed = out.getvalue()[len(before):]
    assert "── incident #1 · thread ──" in printed
    assert "Did the clamp on `support.reply` work?" in printed
    shell.show_pending()
    assert out.getvalue()[len(before):] == printed  # shown once


def test_an_expiry_outside_an_incident_prints_in_the_console(db):
    seeded(db)
    feed = ConsoleFeed()
    shell, out = console(db, feed)
    shell.handle_line("kill docs.answer for 10m")
    assert "Done:" in out.getvalue()
    jc = JobContext(db=db, delivery=feed, alert_channel=CHANNEL)
    assert revert_expired_controls(jc, NOW + 11 * MIN)
    shell.show_pending()
    assert f"to {CHANNEL}" in out.getvalue() and "docs.answer" in out.getvalue().split("Done:")[-1]


def test_in_place_redraws_are_left_out_and_cards_come_only_with_news():
    reply = Reply(text="x")
    redraw = Post(1, Target.thread, reply, key="incident:1:triage", replace=True)
    panel = Post(1, Target.thread, reply, key="incident:1:panel:support.reply", replace=True)
    news = Post(1, Target.thread, reply, key="expiry:support.reply:prod:v3")
    assert scheduled_news([redraw], [1]) == ([], [])
    assert scheduled_news([redraw, panel, news], [1, 2]) == ([panel, news], [1])


def test_a_stale_button_says_what_it_lost_to_and_that_nothing_changed(db):
    seeded(db)
    shell, out = console(db, read=lambda _prompt: "yes")
    shell.handle_line("controls support.reply")
    kill = next(i for i, b in enumerate(shell.buttons, 1) if b.label == "Kill route")
    shell.handle_line("clamp support.reply 900")  # someone else moves the route on
    shell.handle_line(str(kill))
    last = out.getvalue().rsplit(PROMPT, 1)[-1]
    assert "Not applied: `support.reply` changed since that button was shown" in last
    assert "@ana set max_tokens to 900 on `support.reply`" in last and "nothing changed" in last


def test_postmortem_export_and_help_are_answered_in_the_console(db, tmp_path):
    seeded(db)
    shell, out = console(db)
    shell.handle_line("postmortem")
    assert "No incident yet" in out.getvalue()
    shell.handle_line("start support.reply cost tokens exploding")
    shell.handle_line("postmortem")
    assert "# Postmortem — incident #1" in out.getvalue()
    shell.handle_line("postmortem #7")
    assert "there is no incident #7" in out.getvalue()
    shell.handle_line("attach demo-support.reply-000001 bad")
    target = tmp_path / "labels.csv"
    shell.handle_line(f"export #1 csv {target}")
    assert "wrote 1 evidence row(s)" in out.getvalue()
    assert target.read_text().splitlines()[1].count("demo-support.reply-000001") == 1
    shell.handle_line("help")
    help_text = out.getvalue().rsplit("llm-incident console commands", 1)[1]
    assert "/llm-incident" not in help_text and "  postmortem [#N]" in help_text
    assert "  kill <route>" in help_text


def test_while_the_prompt_waits_news_prints_above_it_and_the_prompt_comes_back(db):
    seeded(db)
    feed = ConsoleFeed()
    shown = threading.Event()
    lines = iter(["start support.reply cost tokens exploding", "clamp support.reply 800"])
    out = io.StringIO()

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is not None:
            return line
        assert check_mitigations(JobContext(db=db, delivery=feed), NOW + 6 * MIN)
        assert shown.wait(10) or "Did the clamp" in out.getvalue()
        raise EOFError

    class Watched(io.StringIO):
        def write(self, text: str) -> int:
            if "Did the clamp" in text:
                shown.set()
            return super().write(text)

    out = Watched()
    Shell(db, user="ana", out=out, read=read, clock=lambda: NOW, feed=feed, live=True,
          current_input=lambda: "sta").loop()
    printed = out.getvalue()
    assert "Did the clamp on `support.reply` work?" in printed
    tail = printed.split("Did the clamp", 1)[1]
    assert f"{PROMPT}sta" in tail  # the prompt and the half-typed line are drawn again
