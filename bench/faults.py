"""Bad-day figures in one run: ack latency with the inbox, kill-to-effect while Slack is healthy,
answering 429 or hanging, and the outbox's delivery delay after a crash.

1. Ack p50/p99: signed slash commands to two `serve` processes on the same kind of database,
   alternating, one at a time: ours (the request is stored in the inbox before the ack) and the
   same server with the previous ack path (ack first, then run in memory: what was lost on a
   crash). Target: p99 ours <= 1.2x the previous path's p99.
2. Kill-to-effect: `kill` / `restore` typed alternately in an incident channel while the fake
   Slack is healthy, answers 429 with Retry-After: 30 to every call, or holds every call; time
   from sending the signed command to `GET /v1/routes/{route}/controls` showing the change.
   Target: p95 <= 1 s in all three.
3. Delivery delay after a crash (bench/faults_outbox.py's series). Target: <= 5 s.

    python bench/faults.py [--acks 300] [--kills 20] [--crash-runs 2]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ack import seed  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender  # noqa: E402

KEY = "bench-faults-key-0123"
OUTAGES = {"healthy": None, "429": dict(mode="error", status=429, retry_after=30),
           "hang": dict(mode="hang")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


# -- servers (subprocesses of this script) -------------------------------------------------------

def serve(kind: str, port: int) -> None:
    """`kind` "inbox": the product as it is; "ackfirst": the previous ack path, patched in here."""
    import uvicorn

    from llm_incident.app import create_app
    from llm_incident.settings import load_settings
    from llm_incident.slack import listeners

    if kind == "ackfirst":
        def ack_first(self, ack, kind, body, key, *, ack_text=None):
            ack(text=ack_text) if ack_text else ack()
            item = listeners.inbox.accept(self.db, key=key, kind=kind, body=body,
                                          now=self.clock())
            if item is not None:
                self.inbox.submit(item)

        listeners.Handlers._accept = ack_first
    uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=port, log_level="warning")


def start(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} server did not start")
            time.sleep(0.1)


def environment(db_url: str, slack: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=slack.api_url, LLM_INCIDENT_DATABASE_URL=db_url,
               LLM_INCIDENT_INCIDENT_CHANNEL="C0INC", LLM_INCIDENT_API_KEYS=KEY,
               LLM_INCIDENT_SCHEDULER="false")
    return env


# -- 1. ack latency ------------------------------------------------------------------------------

def ack_series(requests: int, warmup: int = 30) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"inbox": [], "ackfirst": []}
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        procs, senders = [], {}
        for kind in latencies:
            db_url = f"sqlite:///{Path(tmp) / f'{kind}.db'}"
            seed(db_url)
            port = free_port()
            procs.append(start(kind, port, environment(db_url, slack)))
            senders[kind] = SlackSender(f"http://127.0.0.1:{port}", slack.url)
        try:
            for i in range(warmup + requests):
                for kind, sender in senders.items():
                    body = sender.command_body(f"status #1 bench {i}" if i % 2 else "list")
                    started = time.perf_counter()
                    response = sender.send(body, "application/x-www-form-urlencoded")
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, response.text
                    if i >= warmup:
                        latencies[kind].append(elapsed)
        finally:
            for sender in senders.values():
                sender.close()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)
    return latencies


# -- 2. kill-to-effect ---------------------------------------------------------------------------

def kill_series(kills: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        db_url = f"sqlite:///{Path(tmp) / 'kills.db'}"
        seed(db_url)
        port = free_port()
        proc = start("inbox", port, environment(db_url, slack))
        sender = SlackSender(f"http://127.0.0.1:{port}", slack.url)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        try:
            sender.command("start support.reply latency bench incident", channel="C0INC")
            slack.wait_for(lambda: slack.posts(channel="C0INC"), what="the incident")
            for mode, outage in OUTAGES.items():
                if outage:
                    slack.outage(**outage)
                seconds = []
                for n in range(kills):
                    verb, enabled = ("kill", False) if n % 2 == 0 else ("restore", True)
                    started = time.perf_counter()
                    sender.command(f"{verb} support.reply", channel="C0INC")
                    while api.get("/v1/routes/support.reply/controls").json()["enabled"] \
                            is not enabled:
                        if time.perf_counter() - started > 60:
                            raise SystemExit(f"{verb} not applied within 60 s ({mode})")
                        time.sleep(0.005)
                    seconds.append((time.perf_counter() - started) * 1000)
                slack.outage(None)
                results[mode] = seconds
        finally:
            sender.close()
            api.close()
            proc.terminate()
            proc.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acks", type=int, default=300)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--crash-runs", type=int, default=2)
    parser.add_argument("--serve", choices=["inbox", "ackfirst"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    acks = ack_series(args.acks)
    print(f"1. slash-command ack latency, {args.acks} signed requests per server, alternating")
    for kind, label in (("inbox", "stored before the ack"), ("ackfirst", "previous: ack first")):
        print(f"   {label:22s} p50 {percentile(acks[kind], 50):6.2f} ms   "
              f"p99 {percentile(acks[kind], 99):6.2f} ms")
    ratio = percentile(acks["inbox"], 99) / percentile(acks["ackfirst"], 99)
    print(f"   p99 ratio: {ratio:.2f}x (target <= 1.2x) {'OK' if ratio <= 1.2 else 'OVER TARGET'}")

    kills = kill_series(args.kills)
    print(f"2. kill/restore typed to effect on the control plane, {args.kills} per Slack state")
    for mode, values in kills.items():
        p95 = percentile(values, 95)
        print(f"   Slack {mode:8s} p50 {percentile(values, 50):7.1f} ms   p95 {p95:7.1f} ms   "
              f"(target p95 <= 1000 ms) {'OK' if p95 <= 1000 else 'OVER TARGET'}")
    healthy = percentile(kills["healthy"], 95)
    print("   p95 ratio to healthy: " + ", ".join(
        f"{mode} {percentile(v, 95) / healthy:.2f}x" for mode, v in kills.items()
        if mode != "healthy"))

    from bench.faults_outbox import crash_delay_series, report
    print("3. outbox delivery delay after kill -9 (bench/faults_outbox.py)")
    report(crash_delay_series(runs=args.crash_runs))


if __name__ == "__main__":
    main()
