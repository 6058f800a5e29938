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

(d) A fleet: `--instances` (20) separate processes, each with its own `Controls` long-polling a server with
Slack and the scheduler on; the Kill / Restore button of the incident's panel is clicked (signed, as in (a)),
timed until every instance applied it (each process notes the moment its cache swapped, on the shared
monotonic clock; target p95 <= 1 s) and until the thread shows "20/20 applied" (the change's line edited in
place by the proof job; target <= 5 s). Then the same after each of `--fleet-restarts` server restarts, with
the time from the new server answering `/healthz` until every instance has reconnected (target <= 2 s).

    python bench/controls.py [--flips 100] [--calls 1000000] [--restarts 20] [--outage 5] [--postgres [ADMIN_URL]]
                             [--instances 20] [--fleet-flips 20] [--fleet-restarts 5] [--only fleet]

Run it from the repo root. `--postgres` runs (a) on throwaway databases created on that server (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import random
import socket
import statistics
import subprocess
import threading
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


# -- the fleet: separate processes, each with its own Controls ----------------------------------------------------


# A child process: one `Controls` for the route, importing only the client package; prints `ready <t>` and
# `<version> <t>` on each change (t: the monotonic clock, shared by the processes of one host) until its stdin
# closes.
INSTANCE = """
import logging, sys, time
from llm_incident_client import Controls

url, key, route, name = sys.argv[1:5]

def heard(event):
    now = time.monotonic()
    if event.kind == "ready":
        print(f"ready {now:.6f}", flush=True)
    elif event.kind == "changed" and route in event.changes:
        after = event.changes[route][1]
        print(f"{after.version if after else 0} {now:.6f}", flush=True)

logging.getLogger("llm_incident.client").setLevel(logging.ERROR)
with Controls(url, key, routes=[route], wait=25, instance_name=name) as controls:
    controls.add_listener(heard)
    if not controls.wait_ready(30):
        raise SystemExit(name + ": never loaded the controls")
    sys.stdin.read()
"""


class Fleet:
    """`count` child processes; `seen[name][version]` and `ready[name]` (monotonic times) as they report."""

    def __init__(self, url: str, count: int) -> None:
        self.names = [f"bench-{i:02d}" for i in range(count)]
        self.seen: dict[str, dict[int, float]] = {n: {} for n in self.names}
        self.ready: dict[str, list[float]] = {n: [] for n in self.names}
        self.lock = threading.Lock()
        self.procs = [subprocess.Popen([sys.executable, "-c", INSTANCE, url, KEY, ROUTE, name],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                      for name in self.names]
        for name, proc in zip(self.names, self.procs):
            threading.Thread(target=self._read, args=(name, proc), daemon=True).start()

    def _read(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            what, _, at = line.strip().partition(" ")
            with self.lock:
                if what == "ready":
                    self.ready[name].append(float(at))
                elif what.isdigit():
                    self.seen[name].setdefault(int(what), float(at))

    def applied(self, version: int) -> list[float] | None:
        """Each instance's time of applying `version`, once all did."""
        with self.lock:
            times = [self.seen[n].get(version) for n in self.names]
        return None if None in times else times

    def ready_after(self, since: float) -> list[float] | None:
        with self.lock:
            times = [next((t for t in self.ready[n] if t >= since), None) for n in self.names]
        return None if None in times else times

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_until(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {within:g} s")
        time.sleep(0.001)
    return value


def thread_applied(slack: FakeSlack, panel: dict[str, Any], count: int, after: int) -> bool:
    """Whether a control line (not the panel) was edited to "<count>/<count> instances" since call `after`."""
    return any(f"applied by {count}/{count} instances" in c.args.get("text", "")
               for c in slack.calls("chat.update")[after:] if c.args.get("ts") != panel["ts"])


def fleet_click(slack: FakeSlack, sender: SlackSender, fleet: Fleet, panel: dict[str, Any], version: int,
                label: str) -> tuple[list[float], float, int]:
    """Click the panel's Kill/Restore; (each instance's seconds to apply, seconds to "N/N applied" in the
    thread, the new version)."""
    message, button = slack.wait_for(lambda: panel_switch(slack, panel, version), what=f"the panel at v{version}")
    payload = sender.button_payload(button, message=message, channel=INCIDENTS, response=label)
    updates = len(slack.calls("chat.update"))
    start = time.monotonic()
    sender.interactive(payload).raise_for_status()
    times = wait_until(lambda: fleet.applied(version + 1), 10, f"{label}: every instance applying v{version + 1}")
    wait_until(lambda: thread_applied(slack, panel, len(fleet.names), updates), 30, f"{label}: the thread's N/N")
    shown = time.monotonic() - start
    return [t - start for t in times], shown, version + 1


def fleet_series(workdir: Path, database_url: str, instances: int, flips: int,
                 restarts: int) -> dict[str, list[float]]:
    """(d): clicks with `instances` processes connected, then the same after each restart."""
    out: dict[str, list[float]] = {"each": [], "all": [], "thread": [], "reconnect": [], "each_r": [],
                                   "all_r": [], "thread_r": []}
    with FakeSlack() as slack:
        port = free_port()
        settings = slack_settings(slack)
        server = start_server(workdir, database_url, port, api_key=KEY, name="fleet", **settings)
        fleet = None
        try:
            with closing(SlackSender(server.url, slack.url)) as sender, \
                    httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
                panel = open_incident(http, slack, sender)
                fleet = Fleet(server.url, instances)

                def all_listed() -> bool:
                    answer = http.get("/v1/instances", params={"route": ROUTE, "stale": "false"}).json()
                    return answer["count"] >= instances

                wait_until(all_listed, 60, "every instance connected")
                version = http.get(f"/v1/routes/{ROUTE}/controls").json()["version"]
                for i in range(flips):
                    each, shown, version = fleet_click(slack, sender, fleet, panel, version, f"fleet{i}")
                    out["each"] += each
                    out["all"].append(max(each))
                    out["thread"].append(shown)
                    time.sleep(0.05)
                for r in range(restarts):
                    down = time.monotonic()
                    server.stop()
                    server = start_server(workdir, database_url, port, api_key=KEY, name="fleet", **settings)
                    up = time.monotonic()
                    back = wait_until(lambda: fleet.ready_after(down), 30, f"restart {r}: every instance back")
                    out["reconnect"].append(max(max(back) - up, 0.0))
                    each, shown, version = fleet_click(slack, sender, fleet, panel, version, f"restart{r}")
                    out["each_r"] += each
                    out["all_r"].append(max(each))
                    out["thread_r"].append(shown)
        finally:
            if fleet is not None:
                fleet.close()
            server.stop()
    return out


def print_fleet(out: dict[str, list[float]], instances: int, backend: str, baseline_ms: float | None) -> None:
    def figures(values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return (f"p50 {percentile(ms, 50):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   "
                f"max {max(ms):7.1f} ms")

    print(f"(d) {instances} instances (separate processes), kill/restore by a signed Slack click, "
          f"{len(out['all'])} clicks ({backend})")
    print(f"    every instance applied   {figures(out['all'])}   (target p95 <= 1000 ms)")
    print(f"    per instance             {figures(out['each'])}   ({len(out['each'])} applications)")
    print(f"    thread shows {instances}/{instances} applied {figures(out['thread'])}   (target <= 5000 ms)")
    if baseline_ms:
        print(f"    ratio of the every-instance p95 to the one-client Slack-click p95 ({baseline_ms:.1f} ms) "
              f"{percentile([v * 1000 for v in out['all']], 95) / baseline_ms:5.1f}x")
    if out["reconnect"]:
        print(f"    after {len(out['reconnect'])} server restarts:")
        print(f"    every instance reconnected {figures(out['reconnect'])}   (target <= 2000 ms, "
              "from the new server answering /healthz)")
        print(f"    every instance applied   {figures(out['all_r'])}   (target p95 <= 1000 ms)")
        print(f"    thread shows {instances}/{instances} applied {figures(out['thread_r'])}   (target <= 5000 ms)")


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
    parser.add_argument("--instances", type=int, default=20, help="fleet series: processes connected")
    parser.add_argument("--fleet-flips", type=int, default=20, help="fleet series: clicks (0: skip it)")
    parser.add_argument("--fleet-restarts", type=int, default=5, help="fleet series: server restarts")
    parser.add_argument("--only", choices=["fleet"], help="run only this series")
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

    backend = "PostgreSQL" if args.postgres else "SQLite"
    if args.only == "fleet":
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            out = fleet_series(Path(tmp), database(stack, tmp, "fleet.db"), args.instances, args.fleet_flips,
                               args.fleet_restarts)
        print_fleet(out, args.instances, backend, None)
        return
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
        with ExitStack() as stack:
            fleet = fleet_series(Path(tmp), database(stack, tmp, "fleet.db"), args.instances, args.fleet_flips,
                                 args.fleet_restarts) if args.fleet_flips else None
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

    if fleet is not None:
        print_fleet(fleet, args.instances, backend, percentile([t * 1000 for t in clicks], 95))


if __name__ == "__main__":
    main()
