"""Ingest throughput: HTTP `POST /v1/events` (batches of 1,000) vs a raw insert of the same rows.

On SQLite: starts `llm-incident serve` on a fresh file, sends N events over HTTP, then inserts the
same rows with `sqlite3.executemany` into another fresh file with the same schema (target: HTTP
>= 0.3x raw). On PostgreSQL (with LLM_INCIDENT_BENCH_PG_URL set, a throwaway database each time):
the same HTTP run against `COPY … FROM STDIN` of the same rows, one transaction per batch either
way (the ratio is reported). With `--preload M` the HTTP run is repeated on a table already holding
M events over the 7 days before (bulk-loaded as the other benches do, same routes, rolled up) and compared
with the empty run (target: loaded >= 0.8x empty). The empty-table runs of both sides are repeated
(`--repeat`, interleaved) and the fastest of each is reported; the loaded run is done once (its
events would be duplicates the second time), so its ratio leans low.

    python bench/ingest.py [--events 50000] [--batch 1000] [--routes 20] [--preload 0] [--repeat 3]
                           [--backend sqlite|postgresql|both]
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
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.backends
from bench.backends import load_average, load_sqlite, postgres_db  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.events.ingest import validate_batch  # noqa: E402
from llm_incident.migrate import upgrade  # noqa: E402
from llm_incident.rollups.build import roll_up  # noqa: E402

KEY = "bench-key"


def make_events(n: int, routes: int = 20) -> list[dict]:
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    models = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic"), ("in-house-7b", "self")]
    return [
        {
            "event_id": f"bench-{i:08d}",
            "ts": (start + timedelta(milliseconds=100 * i)).isoformat(),
            "route": f"route.{i % routes}",
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


def preload_rows(n: int, routes: int) -> Iterator[tuple]:
    """`n` stored events (bench.backends COLUMNS order) over the 7 days before the HTTP events."""
    end = datetime.now(timezone.utc) - timedelta(hours=3)
    step = timedelta(days=7) / max(n, 1)
    for i in range(n):
        ts = end - step * (n - i)
        yield (f"pre-{i:09d}", ts, ts, f"route.{i % routes}", "prod", "gpt-4o-mini", "openai",
               "us-east-1", "pro", 1000 + i % 500, 200 + i % 300, 500.0 + i % 1000,
               "flagged" if i % 50 == 0 else "ok", None, False, 0.0003, True, "p1", "42", 1,
               '{"tenant":"t%d"}' % (i % 7))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (less disturbed by a busy box than wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Rate = tuple[float, float]  # events per second (wall), CPU microseconds per event


def roll_up_all(db: Database) -> None:
    """Rollups current for the preloaded rows, as the storage job keeps them in service (else the
    server's first job run rolls up the whole table while the bench sends)."""
    roll_up(db, datetime.now(timezone.utc) + timedelta(minutes=5), max_batches=10**6)


def http_rate(events: list[dict], batch: int, workdir: Path, url: str) -> Rate:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INCIDENT_", "SLACK_"))}
    env.update(LLM_INCIDENT_DATABASE_URL=url, LLM_INCIDENT_API_KEYS=KEY)
    exe = shutil.which("llm-incident") or str(Path(sys.executable).parent / "llm-incident")
    server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60,
                          headers={"Authorization": f"Bearer {KEY}",
                                   "Content-Type": "application/json"}) as client:
            deadline = time.monotonic() + 120
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
            start, cpu = time.perf_counter(), cpu_seconds(server.pid)
            accepted = 0
            for body in bodies:
                response = client.post("/v1/events", content=body)
                response.raise_for_status()
                accepted += response.json()["accepted"]
            elapsed, cpu = time.perf_counter() - start, cpu_seconds(server.pid) - cpu
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if accepted != len(events):
        raise SystemExit(f"HTTP ingest accepted {accepted} of {len(events)}")
    return len(events) / elapsed, cpu * 1e6 / len(events)


def stored_rows(events: list[dict]) -> tuple[list[str], list[dict]]:
    """The rows ingest stores for `events` (validated, priced, redacted), and their columns."""
    rows, _ = validate_batch(events, now=datetime.now(timezone.utc), excerpt_max_chars=2000)
    return list(rows[0]), rows


def raw_sqlite_rate(events: list[dict], batch: int, path: Path) -> Rate:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    cols, rows = stored_rows(events)
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
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(values), batch):
        conn.executemany(sql, values[i:i + batch])
        conn.commit()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    conn.close()
    return len(values) / elapsed, cpu * 1e6 / len(values)


def raw_copy_rate(events: list[dict], batch: int, db: Database) -> Rate:
    """COPY of the same stored rows into an empty PostgreSQL events table, a transaction per batch
    (CPU: this client's only; the server's share is not counted on either side)."""
    cols, rows = stored_rows(events)
    values = [tuple(json.dumps(r[c]) if c == "metadata" else r[c] for c in cols) for r in rows]
    raw = db.engine.raw_connection()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(values), batch):
            with raw.cursor() as cur, cur.copy(f"COPY events ({', '.join(cols)}) FROM STDIN") as copy:
                for row in values[i:i + batch]:
                    copy.write_row(row)
            raw.commit()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        raw.close()
    return len(values) / elapsed, cpu * 1e6 / len(values)


def report(name: str, http: Rate, raw: Rate, raw_name: str, loaded: Rate | None,
           preload: int) -> None:
    """Wall rates (what the targets are stated in) and, per event, the CPU each side spent
    (the HTTP side: the server process's; PostgreSQL's own CPU is on neither)."""
    print(f"\n{name}")
    lines = [("HTTP ingest, empty table", http), (f"raw {raw_name}", raw)]
    if loaded is not None:
        lines.append((f"HTTP ingest, {preload:,} rows loaded", loaded))
    for label, (rate, cpu) in lines:
        print(f"  {label:<34}: {rate:8.0f} events/s  {cpu:7.1f} us CPU/event")
    target = "  (target >= 0.30)" if raw_name == "executemany" else ""
    print(f"  {'ratio HTTP / raw':<34}: {http[0] / raw[0]:8.2f}{target}")
    if loaded is not None:
        print(f"  {'ratio loaded / empty':<34}: {loaded[0] / http[0]:8.2f}  (target >= 0.80)")


def best(rates: list[Rate]) -> Rate:
    """The fastest of repeated runs: on a shared machine the others measure its neighbours."""
    return max(rates)


def run_sqlite(events: list[dict], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        https, raws = [], []
        for run in range(args.repeat):  # interleaved, each on a fresh file
            https.append(http_rate(events, args.batch, workdir, f"sqlite:///{workdir / f'http{run}.db'}"))
            raws.append(raw_sqlite_rate(events, args.batch, workdir / f"raw{run}.db"))
        http, raw = best(https), best(raws)
        loaded = None
        if args.preload:
            path = workdir / "loaded.db"
            load_sqlite(path, preload_rows(args.preload, args.routes), roll_up_all).dispose()
            loaded = http_rate(events, args.batch, workdir, f"sqlite:///{path}")
    report(f"SQLite {sqlite3.sqlite_version}", http, raw, "executemany", loaded, args.preload)


def run_postgres(events: list[dict], args: argparse.Namespace, admin_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        https, raws = [], []
        for _ in range(args.repeat):
            with postgres_db(admin_url, []) as db:
                https.append(http_rate(events, args.batch, workdir, db.url))
            with postgres_db(admin_url, []) as db:
                raws.append(raw_copy_rate(events, args.batch, db))
        http, raw = best(https), best(raws)
        loaded = None
        if args.preload:
            with postgres_db(admin_url, preload_rows(args.preload, args.routes), roll_up_all) as db:
                loaded = http_rate(events, args.batch, workdir, db.url)
    report("PostgreSQL", http, raw, "COPY", loaded, args.preload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each empty-table side, interleaved; the fastest of each counts")
    parser.add_argument("--routes", type=int, default=20, help="distinct routes in the events sent")
    parser.add_argument("--preload", type=int, default=0,
                        help="also time HTTP ingest on a table already holding this many events")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both",
                        help="both: SQLite, and PostgreSQL when LLM_INCIDENT_BENCH_PG_URL is set")
    args = parser.parse_args()
    events = make_events(args.events, args.routes)
    print(f"events: {args.events}, batch: {args.batch}, routes: {args.routes}, best of {args.repeat}; "
          f"{load_average()}")
    if args.backend in ("sqlite", "both"):
        run_sqlite(events, args)
    pg_url = os.environ.get("LLM_INCIDENT_BENCH_PG_URL")
    if args.backend in ("postgresql", "both"):
        if pg_url:
            run_postgres(events, args, pg_url)
        elif args.backend == "postgresql":
            raise SystemExit("set LLM_INCIDENT_BENCH_PG_URL to run on PostgreSQL")
        else:
            print("\n(PostgreSQL skipped: set LLM_INCIDENT_BENCH_PG_URL to run it)")


if __name__ == "__main__":
    main()
