"""The README's tour, typed into `llm-incident demo` on a pseudo-terminal: the alert, Start, the
Triage suggestion, the "did it work?" check, close, and the postmortem it leaves."""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pexpect
import pytest

from tests.support import free_port

EXE = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")
PROMPT = "llm-incident> "
NOT_FOR_THE_TERMINAL = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}|\bINFO\b|\bDEBUG\b|apscheduler|uvicorn|Traceback|internal error")


def metric_row(markdown: str, route: str, metric: str) -> list[str]:
    """The cells of `metric`'s row in the postmortem's before/during/after table of `route`."""
    section = markdown.split(f"#### `{route}`", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith(f"| {metric} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def number(cell: str) -> float:
    return float(re.sub(r"[^0-9.]", "", cell))


@pytest.mark.timeout(240)
def test_the_readme_tour_on_a_terminal(tmp_path):
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "TERM": "xterm"}
    child = pexpect.spawn(EXE, ["demo", "--port", str(free_port()), "--speed", "60"],
                          cwd=tmp_path, env=env, encoding="utf-8", timeout=90,
                          dimensions=(60, 250))
    child.logfile_read = transcript = io.StringIO()
    try:
        child.expect(PROMPT)
        # 1. the alert prints by itself; its Start button opens the incident
        child.expect(r"CRITICAL p95 tokens_out on `support\.reply`[^\[]*\[(\d+)\] Start incident")
        start_button = child.match.group(1)
        child.expect(PROMPT)
        child.sendline(start_button)
        # 2. the Triage message names the cause and offers the clamp
        child.expect(r"Likely cause: prompt change on support\.reply")
        child.expect(r"\[(\d+)\] Clamp support\.reply to (\d+)")
        clamp_button, clamp = child.match.group(1), int(child.match.group(2))
        child.expect(PROMPT)
        child.sendline(clamp_button)
        child.expect(f"clamped `support.reply` to {clamp} output tokens")
        # 3. "did it work?" comes by itself, 5 demo minutes (5 s at 60x) later
        child.expect(r"Did the clamp on `support\.reply` work\?")
        child.expect("Recovered")
        child.expect(PROMPT)
        # 4. close, then the postmortem
        child.sendline("close")
        child.expect("Postmortem draft")
        child.expect(PROMPT)
        child.sendline("postmortem 1")
        child.expect("## Timeline")
        child.expect(PROMPT)
        child.sendline("quit")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    terminal = transcript.getvalue().replace("\r\n", "\n")
    markdown = terminal.split("postmortem 1\n# Postmortem", 1)[1]
    calls = metric_row(markdown, "support.reply", "calls")
    tokens = metric_row(markdown, "support.reply", "p95 tokens_out")
    assert all(number(c) > 0 for c in (calls[1], calls[2], calls[4])), calls  # before, during, after
    before, during, after = number(tokens[1]), number(tokens[2]), number(tokens[4])
    assert during > 3 * before and after <= clamp < during, tokens  # the after shows recovery
    leaked = NOT_FOR_THE_TERMINAL.search(terminal)
    assert leaked is None, terminal[max(0, leaked.start() - 300):leaked.end() + 300]
