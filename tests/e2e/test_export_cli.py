"""`llm-incident export-labels`: the installed console script exporting labelled evidence."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.evidence.export import COLUMNS
from llm_incident.evidence.service import attach
from llm_incident.incidents.service import StartRequest, start_incident
from llm_incident.migrate import upgrade
from tests.e2e.test_cli import run
from tests.support import postgres_database

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)


def seed(url: str) -> None:
    db = Database(url)
    upgrade(db)
    events = [{"event_id": f"ev-{i}", "route": "support.reply", "model": "gpt-4o",
               "tokens_out": 10 * i, "ts": (NOW - timedelta(minutes=i)).isoformat(),
               "output_excerpt": f"answer, \"{i}\"", "metadata": {"i": i}} for i in range(1, 4)]
    with db.write() as session:
        ingest_events(session, events, now=NOW)
        first, _ = start_incident(session, StartRequest(commander="U1"), now=NOW)
        attach(session, first, ["ev-1"], label="good", note="fine, really", actor="U2", now=NOW)
        attach(session, first, ["ev-2"], label="bad", note="refund made up", actor="U3", now=NOW)
        second, _ = start_incident(session, StartRequest(commander="U1"), now=NOW)
        attach(session, second, ["ev-3"], actor="U4", now=NOW)
    db.dispose()


@pytest.fixture
def sqlite_env(tmp_path):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    seed(url)
    return {"LLM_INCIDENT_DATABASE_URL": url}


def test_jsonl_to_stdout_for_one_incident(sqlite_env, tmp_path):
    result = run(["export-labels", "--incident", "1"], sqlite_env, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["incident"], r["event_id"], r["label"]) for r in rows] == [(1, "ev-2", "bad"),
                                                                          (1, "ev-1", "good")]
    assert list(rows[0]) == list(COLUMNS)
    assert (rows[0]["note"], rows[0]["labelled_by"], rows[0]["tokens_out"]) == (
        "refund made up", "U3", 20)
    assert rows[1]["metadata"] == {"i": 1} and rows[1]["output_excerpt"] == 'answer, "1"'


def test_csv_to_a_file_for_every_incident(sqlite_env, tmp_path):
    out = tmp_path / "labels.csv"
    result = run(["export-labels", "--format", "csv", "--output", str(out)], sqlite_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "wrote 3 evidence row(s)" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["incident"], r["event_id"], r["label"]) for r in rows] == [
        ("1", "ev-2", "bad"), ("1", "ev-1", "good"), ("2", "ev-3", "")]
    assert json.loads(rows[1]["metadata"]) == {"i": 1}
    assert rows[1]["note"] == "fine, really" and rows[1]["output_excerpt"] == 'answer, "1"'


def test_unknown_incident_exits_1_with_a_clear_error(sqlite_env, tmp_path):
    result = run(["export-labels", "--incident", "9"], sqlite_env, tmp_path)
    assert result.returncode == 1
    assert "no incident #9" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_export_on_postgres(tmp_path):
    with postgres_database() as url:
        seed(url)
        result = run(["export-labels", "--format", "csv"], {"LLM_INCIDENT_DATABASE_URL": url},
                     tmp_path)
        assert result.returncode == 0, result.stderr
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["event_id"] for r in rows] == ["ev-2", "ev-1", "ev-3"]


def test_help_documents_the_options(tmp_path):
    out = run(["export-labels", "--help"], {}, tmp_path).stdout
    assert all(word in out for word in ("--incident", "--format", "jsonl", "csv", "--output"))
