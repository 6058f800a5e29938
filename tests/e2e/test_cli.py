"""The installed `llm-incident` console script, run as a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.db import Database
from tests.support import free_port, live_server, postgres_database, settings_for

EXE = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")


def run(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(env_extra)
    return subprocess.run([EXE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_help_documents_every_command(tmp_path):
    out = run(["--help"], {}, tmp_path).stdout
    for command in ("serve", "demo", "db", "keys"):
        assert command in out
    keys_help = run(["keys", "--help"], {}, tmp_path).stdout
    assert all(word in keys_help for word in ("create", "list", "revoke"))


def test_invalid_setting_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = run(["db", "upgrade"], {"LLM_INCIDENT_EXCERPT_MAX_CHARS": "many"}, tmp_path)
    assert result.returncode == 2
    assert "LLM_INCIDENT_EXCERPT_MAX_CHARS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url, says", [
    ("mysql://root@127.0.0.1/test", "'mysql' databases are not supported"),
    ("mssql+pyodbc://sa@db/x", "'mssql' databases are not supported"),
    ("not a url at all", "is not a database URL"),
    ("", "is not a database URL"),
])
@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--port", "1"]])
def test_a_bad_database_url_exits_2_with_one_line(tmp_path, url, says, command):
    result = run(command, {"LLM_INCIDENT_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "LLM_INCIDENT_DATABASE_URL" in result.stderr and says in result.stderr


def test_postgres_url_without_the_postgres_extra_names_the_extra(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env["LLM_INCIDENT_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/postgres"
    no_driver = ("import sys; sys.modules['psycopg'] = None; "  # as if the extra were missing
                 "from llm_incident.cli import main; sys.argv[0] = 'llm-incident'; main()")
    result = subprocess.run([sys.executable, "-c", no_driver, "db", "upgrade"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "pip install 'llm-incident[postgres]'" in result.stderr


def test_db_upgrade_on_postgres(tmp_path):
    with postgres_database() as url:
        result = run(["db", "upgrade"], {"LLM_INCIDENT_DATABASE_URL": url}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "upgraded to revision" in result.stdout


def test_keys_create_takes_scopes_and_keys_list_shows_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'scopes.db'}"
    env = {"LLM_INCIDENT_DATABASE_URL": url}
    created = run(["keys", "create", "flipper", "--scope", "controls,read"], env, tmp_path)
    assert created.returncode == 0 and "(read controls)" in created.stderr, created.stderr
    key = created.stdout.strip()
    assert run(["keys", "create", "sender"], env, tmp_path).returncode == 0
    bad = run(["keys", "create", "oops", "--scope", "everything"], env, tmp_path)
    assert bad.returncode == 2 and "unknown scope 'everything'" in bad.stderr
    listed = run(["keys", "list"], env, tmp_path).stdout.splitlines()
    assert [line.split("\t")[1:3] for line in listed] == [["flipper", "read,controls"], ["sender", "ingest,read"]]
    db = Database(url)
    app = create_app(settings_for(db, api_keys=[]), database=db)
    with live_server(app) as base:
        headers = {"Authorization": f"Bearer {key}"}
        put = httpx.put(f"{base}/v1/routes/r/controls", json={"enabled": False}, headers=headers)
        assert put.status_code == 200 and put.json()["controls"]["updated_by"] == "key:flipper"
        denied = httpx.post(f"{base}/v1/events", json=[{"route": "r"}], headers=headers)
        assert denied.status_code == 403 and "needs the `ingest` scope" in denied.json()["error"]
    db.dispose()


def test_key_lifecycle_create_use_list_revoke(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    env = {"LLM_INCIDENT_DATABASE_URL": url}
    created = run(["keys", "create", "ingest-bot"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("lli_") and "cannot be shown again" in created.stderr

    db = Database(url)
    app = create_app(settings_for(db, api_keys=[]), database=db)
    with live_server(app) as base:
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{base}/v1/events", json=[{"route": "r"}], headers=headers).status_code == 200
        listed = run(["keys", "list"], env, tmp_path).stdout
        assert "ingest-bot" in listed and key not in listed and "active" in listed
        revoked = run(["keys", "revoke", "ingest-bot"], env, tmp_path)
        assert revoked.returncode == 0 and "revoked 1 key" in revoked.stdout
        after = httpx.post(f"{base}/v1/events", json=[{"route": "r"}], headers=headers)
        assert after.status_code == 401
    assert run(["keys", "revoke", "ingest-bot"], env, tmp_path).returncode == 1
    db.dispose()


def test_demo_seeds_and_prints_a_banner(tmp_path):
    result = run(["demo", "--no-serve", "--scenario", "provider-429"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "provider-429" in result.stdout and "API key" in result.stdout
    assert (tmp_path / "llm_incident_demo.db").exists()
    # the hints are this scenario's, and name no console or server that is not running
    assert "start docs.answer provider" in result.stdout
    assert "support.reply" not in result.stdout
    assert "console below" not in result.stdout and "curl" not in result.stdout
    assert "llm-incident shell" in result.stdout


@pytest.mark.timeout(60)
def test_serve_upgrades_and_answers_health(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env["LLM_INCIDENT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        assert "llm_incident_http_requests_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_shell_runs_commands_from_stdin(tmp_path):
    env = {"LLM_INCIDENT_DATABASE_URL": f"sqlite:///{tmp_path / 'shell.db'}"}
    seeded = run(["demo", "--no-serve", "--db", str(tmp_path / "shell.db")], {}, tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env_vars.update(env)
    # the alerts the console shows first take the first button numbers: close by command
    script = ("start support.reply cost tokens exploding 🔥\nmetrics support.reply 1h\n"
              "close #1 clamped\nlist\n")
    result = subprocess.run([EXE, "shell", "--user", "ana"], input=script, env=env_vars,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Incident #1 started" in out and "== Summary ==" in out and "Triage: Cost" in out
    assert "p95 tokens_out" in out and "× baseline" in out
    assert "Incident #1 closed." in out and "No open incidents." in out
    assert "── alert · alerts ──" in out and "Start incident" in out  # the console is an alert sink


def test_shell_filter_verbs_apply_their_filter(tmp_path):
    db_file = tmp_path / "shell.db"
    seeded = run(["demo", "--no-serve", "--db", str(db_file)], {}, tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env_vars["LLM_INCIDENT_DATABASE_URL"] = f"sqlite:///{db_file}"
    script = ("start support.reply cost tokens exploding\n"
              "sample support.reply 3 tokens_out > 2000 AND status != \"error\"\n"
              "events tokens_out > 2000 AND route = \"support.reply\" limit 2\n")
    result = subprocess.run([EXE, "shell", "--user", "ana"], input=script, env=env_vars,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Something went wrong" not in out and "bad filter" not in out, out[-3000:]
    assert "Posted 3 events of `support.reply`" in out
    assert "== 2 newest event(s) matching `tokens_out > 2000" in out


@pytest.mark.timeout(90)
def test_demo_serves_and_opens_the_console_on_a_terminal(tmp_path):
    import pty
    import select

    port = free_port()
    main_fd, child_fd = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    proc = subprocess.Popen([EXE, "demo", "--port", str(port)], stdin=child_fd, stdout=child_fd,
                            stderr=child_fd, env=env, cwd=tmp_path, close_fds=True)
    os.close(child_fd)
    seen = b""

    def read_until(marker: bytes, start: int = 0, seconds: float = 60) -> int:
        """Read the terminal until `marker` shows up after `start`; returns where it ends."""
        nonlocal seen
        deadline = time.monotonic() + seconds
        while (found := seen.find(marker, start)) < 0:
            assert time.monotonic() < deadline, seen.decode(errors="replace")[-2000:]
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                seen += os.read(main_fd, 65536)
        return found + len(marker)

    try:
        prompt = read_until(b"llm-incident> ")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok"
        os.write(main_fd, b"start support.reply cost tokens exploding\n")
        read_until(b"llm-incident> ", read_until(b"Recent changes", prompt))
        os.write(main_fd, b"\x04")  # Ctrl-D leaves the console and stops the demo
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)
    assert b"Incident #1 started" in seen
