"""Two real `llm-incident serve` replicas on one PostgreSQL database: exactly one leads the
scheduler, an alert is posted once, and when the leader dies the other takes over and alerts once
more — for the new route only.

Each replica is a separate process (`llm-incident serve`) with the alert job every second, both
pointed at the same fake Slack Web API; the leader is whichever holds the advisory lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakeslack import FakeSlack
from tests.slackpayloads import BOT_TOKEN, SECRET
from tests.support import TEST_KEY, free_port, postgres_database

pytestmark = pytest.mark.postgres

EXE = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")
ALERTS = "C0ALERTS"
ROUTE_A, ROUTE_B = "replica.route-a", "replica.route-b"
INTERVAL = 1  # LLM_INCIDENT_ALERT_INTERVAL_SECONDS
RULES = """\
defaults = false

[[rules]]
id = "errors"
route = "*"
metric = "error_rate"
compare = "absolute"
warning = 0.05
critical = 0.2
min_calls = 20
window = "15m"
"""


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health(self) -> dict[str, Any] | None:
        """/healthz as JSON; None while the server is not answering."""
        try:
            resp = httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.TransportError:
            return None
        return resp.json() if resp.status_code == 200 else None

    def leads(self) -> bool:
        body = self.health()
        return bool(body and isinstance(body.get("scheduler"), dict)
                    and body["scheduler"].get("leader") is True)

    def output(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_replica(name: str, tmp_path: Path, env: dict[str, str]) -> Replica:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    return Replica(name, port, proc, log)


def stop(replica: Replica) -> None:
    if replica.alive():
        replica.proc.send_signal(signal.SIGTERM)
        try:
            replica.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait(timeout=10)


def wait_until(predicate: Callable[[], Any], what: str, replicas: list[Replica],
               timeout: float = 20.0) -> Any:
    """Poll `predicate` until truthy; on timeout fail with the replicas' recent output."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for r in replicas:
            assert r.alive() or r.proc.returncode == -signal.SIGKILL, (
                f"{r.name} exited with {r.proc.returncode}:\n{r.output()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r.name}:\n{r.output()}" for r in replicas)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.1)


def ingest(replica: Replica, route: str, count: int, error_share: float, tag: str) -> None:
    """`count` events on `route` in the last minutes, the first `error_share` of them errors."""
    now = datetime.now(timezone.utc)
    errors = round(count * error_share)
    events = [{"event_id": f"{tag}-{i}", "ts": (now - timedelta(seconds=5 * i)).isoformat(),
               "route": route, "model": "gpt-4o-mini", "provider": "openai",
               "tokens_in": 500, "tokens_out": 120, "duration_ms": 700.0 + i,
               **({"status": "error", "error_code": "503"} if i < errors else {})}
              for i in range(count)]
    resp = httpx.post(f"{replica.url}/v1/events", json={"events": events},
                      headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == count, resp.json()


def alerts_for(slack: FakeSlack, route: str) -> list[dict[str, Any]]:
    """Top-level alert posts in the alert channel about `route`."""
    return [p for p in slack.posts(channel=ALERTS)
            if "thread_ts" not in p and f"`{route}`" in (p.get("text") or "")]


@pytest.mark.timeout(120)
def test_one_leader_alerts_once_and_a_survivor_takes_over(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    replicas: list[Replica] = []
    with postgres_database() as url, FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
        env.update({
            "LLM_INCIDENT_DATABASE_URL": url,
            "LLM_INCIDENT_API_KEYS": TEST_KEY,
            "LLM_INCIDENT_SCHEDULER": "true",
            "LLM_INCIDENT_ALERT_CHANNEL": ALERTS,
            "LLM_INCIDENT_ALERT_RULES": str(rules),
            "LLM_INCIDENT_ALERT_INTERVAL_SECONDS": str(INTERVAL),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
        })
        try:
            # Both at once on the empty database: they upgrade it one after the other.
            replicas += [start_replica(name, tmp_path, env) for name in ("replica-1", "replica-2")]
            for replica in replicas:
                wait_until(replica.health, f"{replica.name} /healthz", replicas, timeout=30)

            def one_leader() -> Replica | None:
                leading = [r for r in replicas if r.leads()]
                return leading[0] if len(leading) == 1 else None

            leader = wait_until(one_leader, "exactly one leader", replicas)
            follower = next(r for r in replicas if r is not leader)
            assert follower.health()["scheduler"]["leader"] is False

            # Route A: 50 calls, half of them errors → one critical alert, posted once.
            ingest(follower, ROUTE_A, 50, 0.5, "a")
            wait_until(lambda: alerts_for(slack, ROUTE_A), "the alert for route A", replicas)
            time.sleep(4 * INTERVAL)  # a few more evaluations: still critical, nothing new
            posts_a = alerts_for(slack, ROUTE_A)
            assert len(posts_a) == 1, [p["text"] for p in posts_a]
            assert "CRITICAL" in posts_a[0]["text"], posts_a[0]["text"]
            assert leader.leads() and not follower.leads()

            # The leader dies without a word: its lock goes with its connection.
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.wait(timeout=10)
            wait_until(follower.leads, "the survivor to take the lead", replicas)

            # Route B: an error burst → one alert for B; A (still critical) is not re-posted.
            ingest(follower, ROUTE_B, 40, 0.75, "b")
            wait_until(lambda: alerts_for(slack, ROUTE_B), "the alert for route B", replicas)
            time.sleep(4 * INTERVAL)
            posts_a, posts_b = alerts_for(slack, ROUTE_A), alerts_for(slack, ROUTE_B)
            assert len(posts_b) == 1, [p["text"] for p in posts_b]
            assert "CRITICAL" in posts_b[0]["text"], posts_b[0]["text"]
            assert len(posts_a) == 1, [p["text"] for p in posts_a]
            # nothing else reached the alert channel, and the survivor's alert runs are clean
            assert len(slack.posts(channel=ALERTS)) == 2, [
                p["text"] for p in slack.posts(channel=ALERTS)]
            status = follower.health()["scheduler"]
            assert status["leader"] is True
            assert status["last_runs"]["alerts"]["error"] is None, status
        finally:
            for replica in replicas:
                if replica.alive():
                    stop(replica)
