"""Slash-command ack latency: our server vs a bare slack-bolt app answering the same requests.

Both servers run in their own process the same way (uvicorn, a FastAPI route that runs Bolt's
sync `App.dispatch` in the thread pool) with the same signing secret, against the test suite's
fake Slack Web API (tests/fakeslack.py, in this process; it also takes the response_url posts).
Ours is the real `create_app` on a fresh SQLite file with seeded traffic and one open incident;
after each ack it does the real work (dedupe row, command core, outbox posts, response_url
answer). The bare app's listener only acks. Requests alternate between the two servers, one
at a time; latency is from sending the signed request to having the HTTP answer.

Prints p50/p99 (nearest rank) for both and the ratio; target: our p99 <= 1.5x the bare p99.

    python bench/ack.py [--requests 1000] [--warmup 50]
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.fakeslack / tests.slackpayloads

from tests.fakeslack import FakeSlack  # noqa: E402
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender  # noqa: E402

COMMANDS = ["help", "list", "status bench update {i}: “p95 back to normal” ✅",
            "metrics support.reply"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the two servers (run as subprocesses of this script) ----------------------------------------

def bare_app(api_url: str):
    """A minimal Bolt app served like ours: its slash-command listener just acks."""
    from slack_bolt import App, BoltRequest
    from slack_sdk import WebClient
    from starlette.concurrency import run_in_threadpool

    bolt = App(client=WebClient(token=BOT_TOKEN, base_url=api_url), signing_secret=SECRET,
               token_verification_enabled=False)
    bolt.command("/llm-incident")(lambda ack: ack())
    app = FastAPI()

    @app.post("/slack/events")
    async def events(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        bolt_request = BoltRequest(body=body, query=request.url.query,
                                   headers=dict(request.headers.items()))
        bolt_response = await run_in_threadpool(bolt.dispatch, bolt_request)
        return Response(status_code=bolt_response.status, content=bolt_response.body,
                        headers=bolt_response.first_headers_without_set_cookie())

    return app


def our_app():
    from llm_incident.app import create_app
    from llm_incident.settings import load_settings

    return create_app(load_settings())


def serve(kind: str, port: int, api_url: str) -> None:
    import uvicorn

    app = bare_app(api_url) if kind == "bare" else our_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the measurement -----------------------------------------------------------------------------

def seed(db_url: str) -> None:
    from llm_incident.db import Database
    from llm_incident.events.ingest import ingest_events
    from llm_incident.migrate import upgrade

    db = Database(db_url)
    upgrade(db)
    now = datetime.now(timezone.utc)
    events = [{"route": "support.reply", "model": "gpt-4o-mini", "tokens_in": 900,
               "tokens_out": 300 + i % 200, "duration_ms": 700 + i % 300,
               "ts": (now - timedelta(seconds=5 * i)).isoformat()} for i in range(2000)]
    with db.write() as session:
        ingest_events(session, events, now=now)
    db.dispose()


def start(kind: str, port: int, api_url: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port),
                             "--api-url", api_url], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.post(f"http://127.0.0.1:{port}/slack/events", content=b"", timeout=2)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} server did not start: {proc.stderr.read()}")
            time.sleep(0.1)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per server")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--serve", choices=["ours", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.api_url)
        return

    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        db_url = f"sqlite:///{Path(tmp) / 'ack.db'}"
        seed(db_url)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
        env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
                   SLACK_API_URL=slack.api_url, LLM_INCIDENT_DATABASE_URL=db_url,
                   LLM_INCIDENT_INCIDENT_CHANNEL="C0INC")
        ports = {"ours": free_port(), "bare": free_port()}
        procs = [start(kind, port, slack.api_url, env) for kind, port in ports.items()]
        senders = {kind: SlackSender(f"http://127.0.0.1:{port}", slack.url)
                   for kind, port in ports.items()}
        latencies: dict[str, list[float]] = {"ours": [], "bare": []}
        try:
            senders["ours"].command("start support.reply latency bench incident", channel="C0WAR")
            for i in range(args.warmup + args.requests):
                text = COMMANDS[i % len(COMMANDS)].format(i=i)
                for kind in ("ours", "bare"):
                    body = senders[kind].command_body(text, channel="C0WAR")
                    started = time.perf_counter()
                    response = senders[kind].send(body, "application/x-www-form-urlencoded")
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise SystemExit(f"{kind} answered {response.status_code}: {response.text}")
                    if i >= args.warmup:
                        latencies[kind].append(elapsed * 1000)
            answered = len(slack.responses())
        finally:
            for sender in senders.values():
                sender.close()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)

    print(f"slash-command ack latency, {args.requests} signed requests per server "
          f"(after {args.warmup} warm-up), alternating, one at a time")
    for kind, label in (("ours", "llm-incident"), ("bare", "bare slack-bolt")):
        values = latencies[kind]
        print(f"  {label:16s} p50 {percentile(values, 50):6.2f} ms   "
              f"p99 {percentile(values, 99):6.2f} ms   max {max(values):6.2f} ms")
    ratio = percentile(latencies["ours"], 99) / percentile(latencies["bare"], 99)
    print(f"  p99 ratio ours / bare: {ratio:.2f}x (target <= 1.5x) "
          f"{'OK' if ratio <= 1.5 else 'OVER TARGET'}")
    print(f"  (our server answered {answered} commands through response_url meanwhile)")


if __name__ == "__main__":
    main()
