"""`llm-incident postmortem INCIDENT` through the installed console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_incident.db import Database
from llm_incident.migrate import upgrade
from tests import postmortem_scenario as scenario
from tests.e2e.test_cli import run
from tests.support import postgres_database

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "postmortem_closed.md"


def seeded(url: str) -> dict[str, str]:
    db = Database(url)
    upgrade(db)
    scenario.seed(db)
    db.dispose()
    return {"LLM_INCIDENT_DATABASE_URL": url}


@pytest.fixture
def env(tmp_path):
    return seeded(f"sqlite:///{tmp_path / 'pm.db'}")


def test_prints_the_markdown_by_number_or_hash(env, tmp_path):
    result = run(["postmortem", "1"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == GOLDEN.read_text(encoding="utf-8")
    assert run(["postmortem", "#1"], env, tmp_path).stdout == result.stdout


def test_output_file_and_charts(env, tmp_path):
    out, charts = tmp_path / "pm.md", tmp_path / "charts"
    result = run(["postmortem", "#1", "--output", str(out), "--charts", str(charts)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and out.read_text(encoding="utf-8") == GOLDEN.read_text("utf-8")
    pngs = sorted(p.name for p in charts.iterdir())
    assert pngs == ["incident-1-search.answer.png", "incident-1-support.reply.png"]
    for name in pngs:
        data = (charts / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    assert "wrote the postmortem of incident #1" in result.stderr


def test_unknown_or_malformed_incident(env, tmp_path):
    unknown = run(["postmortem", "#9"], env, tmp_path)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip() == "llm-incident: there is no incident #9"
    malformed = run(["postmortem", "nine"], env, tmp_path)
    assert malformed.returncode == 2 and "not an incident number" in malformed.stderr
    assert "postmortem" in run(["--help"], {}, tmp_path).stdout


def test_on_postgres(tmp_path):
    with postgres_database() as url:
        result = run(["postmortem", "1"], seeded(url), tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == GOLDEN.read_text(encoding="utf-8")


def test_db_reads_another_file_and_the_demo_file_is_found_beside_it(tmp_path):
    seeded(f"sqlite:///{tmp_path / 'llm_incident_demo.db'}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_flag = run(["postmortem", "1", "--db", str(tmp_path / "llm_incident_demo.db")], {},
                  elsewhere)
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_flag.stdout == GOLDEN.read_text(encoding="utf-8")
    beside = run(["postmortem", "1"], {}, tmp_path)  # no LLM_INCIDENT_DATABASE_URL, no ./llm_incident.db
    assert beside.returncode == 0, beside.stderr
    assert beside.stdout == by_flag.stdout and "reading the demo database" in beside.stderr
    exported = run(["export-labels", "--incident", "1"], {}, tmp_path)
    assert exported.returncode == 0 and exported.stdout.count("\n") >= 1, exported.stderr
    assert not (tmp_path / "llm_incident.db").exists()


def test_a_missing_database_file_is_an_error_not_a_new_empty_file(tmp_path):
    for command in (["postmortem", "1"], ["export-labels"]):
        result = run(command, {}, tmp_path)
        assert result.returncode == 1
        assert "there is no database at" in result.stderr and "--db" in result.stderr
        missing = run([*command, "--db", str(tmp_path / "nope.db")], {}, tmp_path)
        assert missing.returncode == 1 and "nope.db" in missing.stderr
    assert list(tmp_path.iterdir()) == []
