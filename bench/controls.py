"""Route controls: (a) flip-to-effect latency, (b) cost of a cached `guard()` call.

(a) Starts `llm-incident serve` on a fresh SQLite file (or PostgreSQL, see below), keeps a `Controls` client
long-polling it, then flips the kill switch N times and measures, for each flip, the time from sending it until
`guard()` in this process reflects it. Target: p95 <= 1 s. Three series (and the restart series below):
  - Slack button: a second server with Slack on (HTTP mode) against a local fake Slack Web API; an incident is
    started for the route with a signed slash command, then the Kill / Restore button of the mitigation panel
    in its thread is pressed — a signed `block_actions` request carrying the button as the panel shows it now
    (the latest `chat.update` of the panel); the click is timed until `guard().allowed` flips;
  - HTTP: `PUT /v1/routes/{route}/controls` on the control plane;
  - another process: the flip is committed straight to the database, as another replica would.

(b) Times `controls.guard(route)` against a plain `dict.get(route)` in the same run. Target: <= 2 us per call.

(c) Restart: the control plane is stopped (SIGTERM), stays down a random 0 – `--outage` seconds more, and a new
`llm-incident serve` starts on the same port and database; the kill switch is flipped as soon as it answers
`/healthz`, timed until the `Controls` client (which never restarts) shows it. Target: p95 <= 2 s; printed
with its ratio to the HTTP PUT series of (a), measured in the same run.

    python bench/controls.py [--flips 100] [--calls 1000000] [--restarts 20] [--outage 5] [--postgres [ADMIN_URL]]

Run it from the repo root. `--postgres` runs (a) on throwaway databases created on that server (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx

from llm_incident_client import Controls
from llm_incident.controls.service import change_controls
from llm_incident.db import Database

# The Slack variant reuses the test suite's fake Slack Web API and Slack request signing (both plain modules
# without pytest): put the repo root on the path so `python bench/controls.py` finds `tests`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.serverprocess import ServerProcess, start_server  # noqa: E402
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender  # noqa: E402

KEY = "bench-key"
ROUTE = "support.reply"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def timed_flip(controls: Controls, flip: Callable[[], int], what: str, within: float = 10.0) -> tuple[float, int]:
    """(seconds from calling `flip` — which returns the new version — until guard() shows it, that version)."""
    start = time.perf_counter()
    version = flip()
    while controls.guard(ROUTE).version != version:
        if time.perf_counter() > start + within:
            raise SystemExit(f"{what} not seen within {within:g} s")
        time.sleep(0.0002)
    return time.perf_counter() - start, version


def put_flip(http: httpx.Client, enabled: bool, version: int) -> int:
    """PUT the kill switch by compare-and-set on `version`; the new version."""
    response = http.put(f"/v1/routes/{ROUTE}/controls", json={"enabled": enabled, "expected_version": version,
                                                              "reason": "bench", "actor": "bench"})
    response.raise_for_status()
    return response.json()["controls"]["version"]


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
        version = http.get(f"/v1/routes/{ROUTE}/controls").json()["version"]
        for i in range(flips):
            def flip(enabled: bool = i % 2 == 1, current: int = version) -> int:
                if other is None:
                    return put_flip(http, enabled, current)
                with other.write() as session:
                    return change_controls(
                        session, ROUTE, "prod", {"enabled": enabled}, actor="bench", reason="bench",
                        expected_version=current, now=datetime.now(timezone.utc)).controls.version

            took, version = timed_flip(controls, flip, f"flip {i}")
            timings.append(took)
            # Let the client settle back into its long-poll, as between real clicks; with flips from elsewhere,
            # a random pause so they do not fall in step with the server's re-check.
            time.sleep(0.02 + (random.uniform(0, 0.5) if other is not None else 0))
    if other is not None:
        other.dispose()
    return timings


def restart_to_effect(workdir: Path, database_url: str, restarts: int, outage: float) -> list[float]:
    """Seconds from a flip sent right after each restart of the server until the client's guard() shows it."""
    timings = []
    port = free_port()
    server = start_server(workdir, database_url, port, api_key=KEY, name="restart")
    try:
        with Controls(server.url, KEY, wait=25) as controls:
            if not controls.wait_ready(10):
                raise SystemExit("client never loaded the controls")
            version = controls.guard(ROUTE).version or 0
            for i in range(restarts):
                server.stop()
                time.sleep(random.uniform(0, outage))  # down a while longer, as a deploy or a DB restart is
                server = start_server(workdir, database_url, port, api_key=KEY, name="restart")
                with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                                  timeout=30) as http:
                    took, version = timed_flip(controls, lambda: put_flip(http, i % 2 == 1, version),
                                               f"flip after restart {i}", within=60)
                timings.append(took)
    finally:
        server.stop()
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
    parser.add_argument("--restarts", type=int, default=20, help="restart series size (0: skip it)")
    parser.add_argument("--outage", type=float, default=5.0, help="most extra seconds down per restart")
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/postgres",
                        default=None, metavar="ADMIN_URL", help="use a throwaway PostgreSQL database")
    args = parser.parse_args()
    logging.getLogger("llm_incident.client").setLevel(logging.ERROR)  # the restart series' outages are expected
    if args.flips < 50:
        parser.error("--flips must be >= 50")
    if args.restarts and args.restarts < 20:
        parser.error("--restarts must be 0 or >= 20")

    def database(stack: ExitStack, tmp: str, name: str) -> str:
        if args.postgres:
            return stack.enter_context(throwaway_postgres(args.postgres))
        return f"sqlite:///{Path(tmp) / name}"

    def served(stack: ExitStack, tmp: str, database_url: str, **env: str) -> str:
        server: ServerProcess = start_server(Path(tmp), database_url, free_port(), api_key=KEY, **env)
        stack.callback(server.stop)
        return server.url

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
        with ExitStack() as stack:
            restarted = restart_to_effect(Path(tmp), database(stack, tmp, "restart.db"), args.restarts,
                                          args.outage) if args.restarts else []
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
    if restarted:
        ms, baseline = [t * 1000 for t in restarted], percentile([t * 1000 for t in timings], 95)
        print(f"(c) flip right after a control-plane restart, {len(ms)} restarts (+0-{args.outage:g} s down) "
              f"({backend})")
        print(f"    p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   max {max(ms):7.1f} ms   "
              f"(target p95 <= 2000 ms)   ratio to the HTTP PUT p95 ({baseline:.1f} ms) "
              f"{percentile(ms, 95) / baseline:5.1f}x")


if __name__ == "__main__":
    main()
