"""`llm-incident alerts check`: the installed command, and in-process under a frozen clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from freezegun import freeze_time

from llm_incident.cli import main
from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.migrate import upgrade
from tests.e2e.test_cli import run

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def seeded(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    db = Database(url)
    upgrade(db)
    events = [{"event_id": f"c{i}", "route": "cli.route", "status": "error" if i % 3 == 0 else "ok",
               "error_code": "429" if i % 3 == 0 else None,
               "ts": (NOW - timedelta(seconds=10 * (i + 1))).isoformat()} for i in range(60)]
    with db.write() as session:
        ingest_events(session, events, now=NOW)
    db.dispose()
    return url


def test_check_at_a_frozen_time_stores_each_change_once(tmp_path, monkeypatch):
    url = seeded(tmp_path)
    for name, value in {"LLM_INCIDENT_DATABASE_URL": url, "LLM_INCIDENT_ALERT_CHANNEL": "C_AL",
                        "SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": ""}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    with freeze_time(NOW + timedelta(minutes=1)):
        dry = runner.invoke(main, ["alerts", "check", "--dry-run"])
        first = runner.invoke(main, ["alerts", "check"])
        second = runner.invoke(main, ["alerts", "check"])
    assert dry.exit_code == 0 and "Dry run: nothing stored or posted." in dry.output
    assert "at 2026-11-26 14:01:00 UTC" in first.output
    lines = first.output.splitlines()
    # 33 % errors: the 5 minutes' 95 % lower bound (19 %) is under critical's 20 %
    assert any(line.split()[:3] == ["error-rate", "cli.route", "warning"] for line in lines)
    # ten minutes of history: the ratio rules have no baseline yet
    assert any(line.split()[:3] == ["flagged-rate", "cli.route", "learning"] for line in lines)
    assert any(line.split()[:3] == ["rate-limited", "cli.route", "critical"] for line in lines)
    assert "2 state change(s) stored (Slack is off: `alerts` and the console show them)." in (
        first.output)
    assert "0 state change(s) stored" in second.output


def test_installed_command_without_channel_and_with_a_bad_rule_file(tmp_path):
    url = seeded(tmp_path)
    result = run(["alerts", "check", "--all"], {"LLM_INCIDENT_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LLM_INCIDENT_ALERT_CHANNEL is unset: state changes are stored and shown by `alerts`" in (
        result.stdout)
    assert "7 rules" in result.stdout
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nid = "x"\nmetric = "flagged_rate"\nwarning = 5\ncritical = 1\n')
    result = run(["alerts", "check"], {"LLM_INCIDENT_DATABASE_URL": url,
                                       "LLM_INCIDENT_ALERT_RULES": str(bad)}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"llm-incident: {bad}: rule x: rule: critical (1) is below warning (5)")
