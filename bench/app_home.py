"""App Home publish cost with many routes: building the Home view (open incidents, mitigations,
the routes overview of the worst 15 routes) for 200 routes, against one `stats_for` call.

Generates --routes routes (default 200) with --per-route events each (default 120) spread over
the two hours before NOW (the overview's 1 h range and the hour before it, its baseline), into a
temporary SQLite file with the migrated schema (and PostgreSQL with LLM_INCIDENT_BENCH_PG_URL).
Times, best of --repeat runs:

- `cold`: `HomeTab.view` with the overview computed (what the first open in 30 s costs: one
  comparison per route, as `/llm-incident routes` and the dashboard's overview);
- `cached`: `HomeTab.view` within the overview's 30 s (every other open: incidents, mitigations
  and rendering only);
- the baseline: one `stats_for` of one route over the last hour, in the same process.

    python bench/app_home.py [--routes 200] [--per-route 120] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.backends
from bench.backends import on_each_backend  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.events.routes import note_routes  # noqa: E402
from llm_incident.metrics.stats import stats_for  # noqa: E402
from llm_incident.slack.home import HomeTab  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=timezone.utc)


def generate(routes: list[str], per_route: int, seed: int) -> Iterator[tuple]:
    rnd = random.Random(seed)
    for r, route in enumerate(routes):
        for i in range(per_route):
            ts = NOW - timedelta(seconds=rnd.random() * 7200)
            recent = ts > NOW - timedelta(hours=1)
            tokens_out = int(rnd.lognormvariate(5, 0.8)) * (4 if recent and r % 10 == 0 else 1)
            status = "flagged" if rnd.random() < 0.03 else "ok"
            yield (f"home-{r}-{i}", ts, ts, route, "prod", "gpt-4o-mini", "openai", "us-east-1",
                   "pro", 400, tokens_out, round(150 + tokens_out * 12, 1), status, None, False,
                   400 * 0.15e-6 + tokens_out * 0.6e-6, True, "p", "1", 1, "{}")


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--per-route", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    routes = [f"route.{i:03d}" for i in range(args.routes)]

    def prepare(db: Database) -> None:
        with db.write() as session:
            note_routes(session, [{"route": r, "ts": NOW} for r in routes])

    def run(db: Database, label: str) -> bool:
        def baseline() -> object:
            with db.read() as session:
                return stats_for(session, routes[0], NOW - timedelta(hours=1), NOW)

        def cold() -> object:
            return HomeTab(db).view(NOW)  # a fresh tab: the overview is computed

        warm = HomeTab(db)
        warm.view(NOW)
        base = best_ms(baseline, args.repeat)
        cold_ms = best_ms(cold, args.repeat)
        cached_ms = best_ms(lambda: warm.view(NOW + timedelta(seconds=1)), args.repeat)
        blocks = len(cold()["blocks"])
        print(f"\n{label}: {args.routes} routes, Home view of {blocks} blocks")
        print(f"{'what':<34}{'best ms':>10}{'× baseline':>12}")
        for name, ms in (("baseline (one stats_for, 1 h)", base),
                         ("Home view, overview computed", cold_ms),
                         ("Home view, overview cached", cached_ms)):
            print(f"{name:<34}{ms:>10.1f}{ms / base:>11.1f}×")
        return True

    on_each_backend(lambda: generate(routes, args.per_route, args.seed), run,
                    size=f"{args.routes * args.per_route:,} events on {args.routes} routes",
                    prepare=prepare)


if __name__ == "__main__":
    main()
