"""Route controls: (a) flip-to-effect latency, (b) cost of a cached `guard()` call.

(a) Starts `llm-incident serve` on a fresh SQLite file (or PostgreSQL, see below), keeps a `Controls` client
long-polling it, then flips the kill switch N times and measures, for each flip, the time from sending it until
`guard()` in this process reflects it. Target: p95 <= 1 s. Three series:
  - Slack button: a second server with Slack on (HTTP mode) against a local fake Slack Web API; an incident is
    started for the route with a signed slash command, then the Kill / Restore button of the mitigation panel
    in its thread is pressed — a signed `block_actions` request carrying the button as the panel shows it now
    (the latest `chat.update` of the panel); the click is timed until `guard().allowed` flips;
  - HTTP: `PUT /v1/routes/{route}/controls` on the control plane;
  - another process: the flip is committed straight to the database, as another replica would.

(b) Times `controls.guard(route)` against a plain `dict.get(route)` in the same run. Target: <= 2 us per call.

    python bench/controls.py [--flips 100] [--calls 1000000] [--postgres [ADMIN_URL]]

Run it from the repo root. `--postgres` runs (a) on throwaway databases created on that server (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx

from llm_incident.client import Controls
from llm_incident.controls.service import change_controls
from llm_incident.db import Database

# The Slack variant reuses the test suite's fake Slack Web API and Slack request signing (both plain modules
# without pytest): put the repo root on the path so `python bench/controls.py` finds `tests`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender  # noqa: E402

KEY = "bench-key"
ROUTE = "support.reply"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir: Path, database_url: str, **extra_env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(LLM_INCIDENT_DATABASE_URL=database_url, LLM_INCIDENT_API_KEYS=KEY, **extra_env)
    exe = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")
    server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return server, base
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()
                raise SystemExit("server did not start") from None
            time.sleep(0.1)


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from llm_incident.db import normalize_url

    name = f"llm_incident_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def flip_to_effect(base: str, flips: int, database_url: str | None = None) -> list[float]:
    """Seconds from sending each flip until the long-polling client's guard() shows it.

    With `database_url` the flip is committed straight to the database by this process, as another replica
    would: the server learns of it from its periodic re-check instead of its own commit hook.
    """
    timings = []
    other = Database(database_url) if database_url else None
    with Controls(base, KEY, wait=25) as controls, \
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        if not controls.wait_ready(10):
            raise SystemExit("client never loaded the controls")
        url = f"/v1/routes/{ROUTE}/controls"
        version = http.get(url).json()["version"]
        for i in range(flips):
            start = time.perf_counter()
            if other is not None:
                with other.write() as session:
                    version = change_controls(
                        session, ROUTE, "prod", {"enabled": i % 2 == 1}, actor="bench", reason="bench",
                        expected_version=version, now=datetime.now(timezone.utc)).controls.version
            else:
                response = http.put(url, json={"enabled": i % 2 == 1, "expected_version": version,
                                               "reason": "bench", "actor": "bench"})
                response.raise_for_status()
                version = response.json()["controls"]["version"]
            deadline = start + 10
            while controls.guard(ROUTE).version != version:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"flip {i} not seen within 10 s")
                time.sleep(0.0002)
            timings.append(time.perf_counter() - start)
            # Let the client settle back into its long-poll, as between real clicks; with flips from elsewhere,
            # a random pause so they do not fall in step with the server's re-check.
            time.sleep(0.02 + (random.uniform(0, 0.5) if other is not None else 0))
    if other is not None:
        other.dispose()
    return timings


# -- the Slack-button variant -------------------------------------------------------------------------------------

INCIDENTS, WAR_ROOM = "C0INC", "C0WAR"
SWITCHES = ("Kill route", "Restore route")


def slack_settings(slack: FakeSlack) -> dict[str, str]:
    """Environment for a server with Slack on in HTTP mode, talking to the fake Slack Web API."""
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
            "LLM_INCIDENT_INCIDENT_CHANNEL": INCIDENTS}


def open_incident(http: httpx.Client, slack: FakeSlack, sender: SlackSender) -> dict[str, Any]:
    """Some traffic on the route, `/llm-incident start <route> …`; the mitigation panel posted in its thread."""
    now = time.time()
    events = [{"event_id": f"bench-{i}", "route": ROUTE, "model": "gpt-4o-mini", "tokens_in": 900,
               "tokens_out": 400, "duration_ms": 800,
               "ts": datetime.fromtimestamp(now - 30 * i, timezone.utc).isoformat()} for i in range(60)]
    http.post("/v1/events", json=events).raise_for_status()
    sender.command(f"start {ROUTE} bench: flip-to-effect from the panel", channel=WAR_ROOM,
                   response="start").raise_for_status()
    root = slack.wait_for(lambda: next((p for p in slack.posts(channel=INCIDENTS) if "thread_ts" not in p), None),
                          what="the incident's summary card")
    return slack.wait_for(lambda: next((p for p in slack.posts(thread_ts=root["ts"])
                                        if p["text"] == f"Mitigations for {ROUTE}"), None),
                          what="the mitigation panel")


def panel_switch(slack: FakeSlack, panel: dict[str, Any], version: int) -> tuple[dict, dict] | None:
    """(message, Kill/Restore button) of the panel as Slack shows it now, once it shows `version`; else None."""
    updates = [c.args for c in slack.calls("chat.update") if c.args.get("ts") == panel["ts"]]
    message = {**panel, **updates[-1]} if updates else panel  # the post has thread_ts, an update does not
    button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["text"]["text"] in SWITCHES)
    return (message, button) if button["value"].endswith(f" @v{version}") else None


def slack_flip_to_effect(base: str, slack: FakeSlack, flips: int) -> list[float]:
    """Seconds from sending each signed panel-button click until the long-polling client's guard() shows it."""
    timings = []
    with Controls(base, KEY, wait=25) as controls, closing(SlackSender(base, slack.url)) as sender, \
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        if not controls.wait_ready(10):
            raise SystemExit("client never loaded the controls")
        panel = open_incident(http, slack, sender)
        version = http.get(f"/v1/routes/{ROUTE}/controls").json()["version"]
        for i in range(flips):
            # Press the button the panel shows now: wait (untimed) until its update for the last flip is out.
            message, button = slack.wait_for(lambda: panel_switch(slack, panel, version),
                                             what=f"the panel at version {version}")
            allowed = button["text"]["text"] == "Restore route"
            payload = sender.button_payload(button, message=message, channel=INCIDENTS, response=f"flip{i}")
            start = time.perf_counter()
            sender.interactive(payload).raise_for_status()
            deadline = start + 10
            while (decision := controls.guard(ROUTE)).allowed != allowed:
                if time.perf_counter() > deadline:
                    said = slack.responses(f"flip{i}")
                    raise SystemExit(f"click {i} ({button['value']}) not seen within 10 s; Slack was told {said}")
                time.sleep(0.0002)
            timings.append(time.perf_counter() - start)
            if decision.version != version + 1:
                raise SystemExit(f"click {i}: version {version} -> {decision.version}, expected one change")
            version = decision.version
            time.sleep(0.02)
    return timings


def guard_cost(base: str, calls: int) -> tuple[float, float]:
    """(seconds per guard() call, seconds per plain dict lookup), best of 5 runs each."""
    with Controls(base, KEY, wait=25) as controls:
        controls.wait_ready(10)
        guard = controls.guard
        table = {ROUTE: object(), "other": object()}
        lookup = table.get

        def best(fn) -> float:
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(calls):
                    fn(ROUTE)
                runs.append((time.perf_counter() - start) / calls)
            return min(runs)

        return best(guard), best(lookup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/postgres",
                        default=None, metavar="ADMIN_URL", help="use a throwaway PostgreSQL database")
    args = parser.parse_args()
    if args.flips < 50:
        parser.error("--flips must be >= 50")

    def database(stack: ExitStack, tmp: str, name: str) -> str:
        if args.postgres:
            return stack.enter_context(throwaway_postgres(args.postgres))
        return f"sqlite:///{Path(tmp) / name}"

    def served(stack: ExitStack, tmp: str, database_url: str, **env: str) -> str:
        server, base = start_server(Path(tmp), database_url, **env)

        @stack.callback
        def stop() -> None:
            server.terminate()
            server.wait(timeout=40)
        return base

    with tempfile.TemporaryDirectory() as tmp:
        with ExitStack() as stack:  # Slack on: its own server and database, so the other series run as before
            slack = stack.enter_context(FakeSlack())
            base = served(stack, tmp, database(stack, tmp, "slack.db"), **slack_settings(slack))
            clicks = slack_flip_to_effect(base, slack, args.flips)
        with ExitStack() as stack:
            database_url = database(stack, tmp, "controls.db")
            base = served(stack, tmp, database_url)
            timings = flip_to_effect(base, args.flips)
            elsewhere = flip_to_effect(base, 50, database_url)
            guard, lookup = guard_cost(base, args.calls)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    for label, series in ((f"signed Slack button (panel Kill/Restore), {len(clicks)} clicks", clicks),
                          (f"HTTP PUT, {len(timings)} flips", timings)):
        ms = [t * 1000 for t in series]
        print(f"(a) flip-to-effect over {label} ({backend})")
        print(f"    p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   "
              f"max {max(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms   (target p95 <= 1000 ms)")
    ms = [t * 1000 for t in elsewhere]
    print("    flips committed by another process (seen through the server's periodic re-check), 50 flips")
    print(f"    p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   max {max(ms):7.1f} ms")
    print(f"(b) guard() {guard * 1e9:7.0f} ns/call   dict.get {lookup * 1e9:7.0f} ns/call   "
          f"ratio {guard / lookup:5.1f}x   (target <= 2000 ns)")


if __name__ == "__main__":
    main()
