"""Schemathesis (the dev extra's pinned version) against the running server's own `/openapi.json`:
every `/v1` operation and `/healthz`, every check, on SQLite and PostgreSQL.

Passing means: no 5xx; status codes, content types, headers and bodies as declared; invalid input
rejected; valid input accepted (see schemathesis.toml for the 400s JSON Schema cannot predict);
the declared bearer auth enforced; OPTIONS and other undeclared methods 405 with `Allow`.
It runs the `st run` command line, as CI or a developer would, in deterministic mode.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents.service import StartRequest, start_incident
from tests.support import TEST_KEY, database_for, live_server, settings_for

CONFIG = Path(__file__).with_name("schemathesis.toml")
OPERATIONS = r"^/(v1/.*|healthz)$"
MAX_EXAMPLES = 15


def seed(db) -> None:
    """A route with traffic and incident #1, so operations reach past their 404s."""
    now = datetime.now(timezone.utc)
    events = [{"event_id": f"e{i}", "route": "support.reply", "model": "gpt-4o-mini",
               "tokens_in": 100 + i, "tokens_out": 20 * i, "duration_ms": 300.0 + i,
               "status": "flagged" if i % 5 == 0 else "ok"} for i in range(30)]
    with db.write() as session:
        ingest_events(session, events, now=now)
        start_incident(session, StartRequest(commander="U1", routes=("support.reply",)), now=now)


def run_schemathesis(base_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{base_url}/openapi.json", "--checks", "all", "--include-path-regex", OPERATIONS,
        "-H", f"Authorization: Bearer {TEST_KEY}", "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic", "--workers", "1", "--no-color", *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded_server(request, tmp_path):
    with database_for(request.param, tmp_path) as db:
        seed(db)
        with live_server(create_app(settings_for(db), database=db)) as url:
            yield url


def test_the_api_answers_as_its_openapi_document_says(seeded_server):
    result = run_schemathesis(seeded_server)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-20_000:]
    paths = httpx.get(f"{seeded_server}/openapi.json", timeout=10).json()["paths"]
    count = sum(len([m for m in ops if m in ("get", "put", "post", "delete", "patch")])
                for ops in paths.values())
    tested = count - 1  # all but /metrics (Prometheus text, no JSON schema)
    assert f"Selected: {tested}/{count}" in report and f"Tested: {tested}" in report, \
        report[-3_000:]
