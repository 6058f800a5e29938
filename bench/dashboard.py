"""Dashboard server time: the overview and a route page over 24 h and 30 d, through the real app.

Generates N events (default 200,000) over the 30 days before NOW for 10 routes (Zipf-like: the
busiest gets about a third) into a temporary SQLite file with the migrated schema, then times each
page as the server answers it (`fastapi.testclient`, in process: routing, auth by bearer key, the
queries and the HTML), best of --repeat runs, interleaved. The baseline, run in the same process,
is `GET /v1/routes/{route}/metrics?window=<range>` for the same route and range: one comparison,
which the overview does once per route and the route page once next to its chart buckets.

The events are rolled up first (`rollups.build.roll_up`, as the scheduler's storage job leaves
them), so comparisons over windows longer than LLM_INCIDENT_EXACT_WINDOW_MAX (6 h) read rollups;
the charts and the overview's sparklines of ranges past that threshold read the day, hour and
minute rollups too (raw events only at minute edges and after the rollups' end), the route page's model
mix comes from its rollup headline and its top prompts from the last exact window of raw events.
--no-rollups times the raw path everywhere. Target (issue #20): <= 300 ms at 10 M events.

With LLM_INCIDENT_BENCH_PG_URL set it does the same on PostgreSQL (a database it creates on that
server and drops afterwards).

    python bench/dashboard.py [--events 200000] [--repeat 5] [--seed 7] [--no-rollups]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.backends
from fastapi.testclient import TestClient  # noqa: E402

from bench.backends import load_sqlite, postgres_db  # noqa: E402
from llm_incident.app import create_app  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.events.routes import note_routes  # noqa: E402
from llm_incident.rollups.build import roll_up  # noqa: E402
from llm_incident.settings import load_settings  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=timezone.utc)
DAYS = 30
ROUTES = ["support.reply", "search.summarize", "chat.answer", "docs.qa", "email.draft",
          "code.review", "ticket.triage", "kb.rewrite", "sales.outreach", "notes.summarize"]
KEY = "bench-read-key-0123456789"


def generate(n: int, seed: int) -> Iterator[tuple]:
    """N event rows in time order over the DAYS before NOW."""
    rnd = random.Random(seed)
    offsets = sorted(rnd.random() * DAYS * 86400 for _ in range(n))
    routes = rnd.choices(ROUTES, [1 / (i + 1) for i in range(len(ROUTES))], k=n)
    start = NOW - timedelta(days=DAYS)
    for i in range(n):
        ts = start + timedelta(seconds=offsets[i])
        tokens_in, tokens_out = int(rnd.lognormvariate(6.5, 0.6)), int(rnd.lognormvariate(5, 0.8))
        roll = rnd.random()
        status, code = ("error", "429") if roll < 0.02 else (("flagged", None) if roll < 0.04
                                                            else ("ok", None))
        cost = tokens_in * 0.15e-6 + tokens_out * 0.6e-6
        yield (f"bench-{i}", ts, ts, routes[i], "prod", "gpt-4o-mini", "openai", "us-east-1",
               "pro", tokens_in, tokens_out, round(150 + tokens_out * 12 + rnd.expovariate(1 / 300), 1),
               status, code, False, cost, True, f"prompt-{rnd.randrange(5)}", "1", 1, "{}")


def prepared(rollups: bool) -> Callable[[Database], None]:
    def prepare(db: Database) -> None:
        """The route registry as ingest would have left it, and the rollups when asked."""
        with db.write() as session:
            note_routes(session, [{"route": r, "ts": t} for r in ROUTES
                                  for t in (NOW - timedelta(days=DAYS), NOW)])
        if rollups:
            started = time.perf_counter()
            run = roll_up(db, NOW + timedelta(minutes=5), max_batches=10**6)
            print(f"rolled up {run.events:,} events into {run.minutes:,} minutes in "
                  f"{time.perf_counter() - started:.1f} s")
    return prepare


def timed(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """(best, median) milliseconds per function, run interleaved `repeat` times after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


def bench(db: Database, label: str, repeat: int) -> None:
    settings = load_settings(_env_file=None, database_url=db.url, scheduler=False,
                             api_keys=[f"read:{KEY}"], slack_bot_token=None,
                             slack_signing_secret=None, slack_app_token=None)
    client = TestClient(create_app(settings, database=db, clock=lambda: NOW))
    headers = {"Authorization": f"Bearer {KEY}"}

    def get(path: str) -> Callable[[], object]:
        def call() -> object:
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            return answer
        return call

    route = ROUTES[0]
    print(f"\n{label}: load average {os.getloadavg()[0]:.2f}")
    print(f"{'page':<32}{'best ms':>10}{'median ms':>11}{'× baseline':>12}")
    for rng in ("24h", "30d"):
        fns = {"baseline (metrics API)": get(f"/v1/routes/{route}/metrics?window={rng}"),
               "overview": get(f"/?range={rng}"),
               "route page": get(f"/routes/{route}?range={rng}")}
        results = timed(fns, repeat)
        base = results["baseline (metrics API)"][0]
        for name, (best, median) in results.items():
            print(f"{name + ' ' + rng:<32}{best:>10.1f}{median:>11.1f}{best / base:>11.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-rollups", action="store_true", help="time the raw path only")
    args = parser.parse_args()
    print(f"{args.events:,} events over {DAYS} days, {len(ROUTES)} routes; "
          f"busiest route {ROUTES[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        db = load_sqlite(Path(tmp) / "bench.db", generate(args.events, args.seed),
                         prepared(not args.no_rollups))
        try:
            bench(db, "SQLite", args.repeat)
        finally:
            db.dispose()
    pg_url = os.environ.get("LLM_INCIDENT_BENCH_PG_URL")
    if pg_url:
        with postgres_db(pg_url, generate(args.events, args.seed),
                         prepared(not args.no_rollups)) as db:
            bench(db, "PostgreSQL", args.repeat)


if __name__ == "__main__":
    main()
