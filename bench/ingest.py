"""Ingest throughput: HTTP `POST /v1/events` (batches of 1,000) vs raw sqlite3 executemany.

Starts `llm-incident serve` on a fresh SQLite file, sends N events over HTTP, then inserts the
same rows with `sqlite3.executemany` into another fresh file with the same schema. Prints both
rates and their ratio (target: HTTP >= 0.3x raw).

    python bench/ingest.py [--events 50000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from llm_incident.db import Database
from llm_incident.events.ingest import validate_batch
from llm_incident.migrate import upgrade

KEY = "bench-key"


def make_events(n: int) -> list[dict]:
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    models = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic"), ("in-house-7b", "self")]
    return [
        {
            "event_id": f"bench-{i:08d}",
            "ts": (start + timedelta(milliseconds=100 * i)).isoformat(),
            "route": f"route.{i % 20}",
            "model": models[i % 3][0],
            "provider": models[i % 3][1],
            "region": "us-east-1",
            "customer_tier": "pro",
            "tokens_in": 1000 + i % 500,
            "tokens_out": 200 + i % 300,
            "duration_ms": 500.0 + i % 1000,
            "status": "flagged" if i % 50 == 0 else "ok",
            "prompt_id": "p1",
            "prompt_version": "42",
            "metadata": {"tenant": f"t{i % 7}"},
            "output_excerpt": "The answer is 42. Contact support@example.com for more.",
        }
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_rate(events: list[dict], batch: int, workdir: Path) -> float:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(LLM_INCIDENT_DATABASE_URL=f"sqlite:///{workdir / 'http.db'}", LLM_INCIDENT_API_KEYS=KEY)
    exe = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")
    server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {KEY}",
                                   "Content-Type": "application/json"}) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise SystemExit("server did not start")
                    time.sleep(0.1)
            bodies = [json.dumps({"events": events[i:i + batch]}).encode()
                      for i in range(0, len(events), batch)]
            client.post("/v1/events", content=json.dumps([{"route": "warmup"}]).encode())
            start = time.perf_counter()
            accepted = 0
            for body in bodies:
                response = client.post("/v1/events", content=body)
                response.raise_for_status()
                accepted += response.json()["accepted"]
            elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=15)
    if accepted != len(events):
        raise SystemExit(f"HTTP ingest accepted {accepted} of {len(events)}")
    return len(events) / elapsed


def raw_rate(events: list[dict], batch: int, workdir: Path) -> float:
    path = workdir / "raw.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    rows, _ = validate_batch(events, now=datetime.now(timezone.utc), excerpt_max_chars=2000)
    cols = list(rows[0])
    values = [
        tuple(json.dumps(r[c]) if c == "metadata" else
              r[c].strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(r[c], datetime) else r[c]
              for c in cols)
        for r in rows
    ]
    sql = (f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    for i in range(0, len(values), batch):
        conn.executemany(sql, values[i:i + batch])
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return len(values) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    events = make_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        http = http_rate(events, args.batch, workdir)
        raw = raw_rate(events, args.batch, workdir)
    print(f"events: {args.events}, batch: {args.batch}")
    print(f"HTTP ingest      : {http:10.0f} events/s")
    print(f"raw executemany  : {raw:10.0f} events/s")
    print(f"ratio HTTP / raw : {http / raw:10.2f}  (target >= 0.30)")


if __name__ == "__main__":
    main()
