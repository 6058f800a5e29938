"""Route window stats on a million events: full `window_stats` vs one hand-written p95 query.

Generates N events (default 1,000,000) over 7 days for 20 routes — Zipf-like traffic, the busiest
route gets about 28 % — into a temporary SQLite file with the real migrated schema (bulk insert
with sqlite3.executemany), then for the busiest route, over the last 1 h and the last 24 h, times:

- full:     `metrics.stats.window_stats(...)` — every stat (counts, rates, error codes, p50/p95/p99
            duration, avg/p95 tokens in/out, cost, retries, model mix);
- baseline: one hand-written covering-index query for p95 duration_ms, the form ARCHITECTURE.md
            measured: `ORDER BY duration_ms LIMIT 1 OFFSET k` on (route, ts, duration_ms), with k
            from a count in the same statement.

Each figure is the best of --repeat runs (median alongside), full and baseline interleaved. Prints
the ratio full / baseline; targets: <= 1.5x for 1 h, <= 2x for 24 h. Also prints, for reference,
the fastest single p95 query we know (a bounded `ORDER BY … DESC` sort). Before timing it checks
that the stats equal those of the bounded-memory path (`fast_path_max_rows=0`) and that their
p95 equals the baseline's. The load average is printed: the figures are only as quiet as the box.

With LLM_INCIDENT_BENCH_PG_URL set (e.g. postgresql://postgres@127.0.0.1:5432/postgres) it does the
same on PostgreSQL, in a database it creates on that server and drops afterwards; there the
baseline is `percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)` — faster there than the
`ORDER BY … LIMIT 1 OFFSET k` form, which is printed for reference.

    python bench/metrics.py [--events 1000000] [--repeat 15] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.backends
from bench.backends import on_each_backend, sqlite_ts  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.metrics.stats import stats_for, window_stats  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
ROUTES = [
    "support.reply", "search.summarize", "chat.answer", "docs.qa", "email.draft", "code.review",
    "ticket.triage", "kb.rewrite", "sales.outreach", "notes.summarize", "translate.text",
    "sql.assist", "moderation.check", "agent.plan", "agent.act", "faq.bot", "legal.redline",
    "hr.policy", "invoice.extract", "onboarding.guide",
]
# model, provider, $ per input token, $ per output token (None = unpriced), traffic weight
MODELS = [
    ("gpt-4o-mini", "openai", 0.15e-6, 0.6e-6, 5),
    ("gpt-4o", "openai", 2.5e-6, 10e-6, 2),
    ("claude-3-5-haiku", "anthropic", 0.8e-6, 4e-6, 2),
    ("in-house-7b", "self", None, None, 1),
]
WINDOWS = (("1 h", timedelta(hours=1), 1.5), ("24 h", timedelta(hours=24), 2.0))

SQLITE_P95 = """
SELECT duration_ms FROM events
WHERE route = :route AND ts >= :start AND ts < :end AND duration_ms IS NOT NULL
ORDER BY duration_ms LIMIT 1 OFFSET (
    SELECT (count(duration_ms) * 95 + 99) / 100 - 1 FROM events
    WHERE route = :route AND ts >= :start AND ts < :end)
"""
SQLITE_P95_DESC = """
SELECT duration_ms FROM events
WHERE route = :route AND ts >= :start AND ts < :end AND duration_ms IS NOT NULL
ORDER BY duration_ms DESC LIMIT 1 OFFSET (
    SELECT count(duration_ms) - (count(duration_ms) * 95 + 99) / 100 FROM events
    WHERE route = :route AND ts >= :start AND ts < :end)
"""
PG_P95 = """
SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM events
WHERE route = :route AND ts >= :start AND ts < :end
"""


def generate(n: int, seed: int) -> Iterator[tuple]:
    """N event rows in time order over the 7 days before NOW (ts as aware datetimes)."""
    rnd = random.Random(seed)
    span = 7 * 86400
    offsets = sorted(rnd.random() * span for _ in range(n))
    routes = rnd.choices(ROUTES, [1 / (i + 1) for i in range(len(ROUTES))], k=n)
    models = rnd.choices(MODELS, [m[4] for m in MODELS], k=n)
    start = NOW - timedelta(days=7)
    for i in range(n):
        ts = start + timedelta(seconds=offsets[i])
        model, provider, price_in, price_out, _ = models[i]
        tokens_in = int(rnd.lognormvariate(6.5, 0.6))
        tokens_out = int(rnd.lognormvariate(5.0, 0.8))
        roll = rnd.random()
        status, code = ("error", rnd.choice(("429", "429", "503", "500"))) if roll < 0.02 else (
            ("flagged", None) if roll < 0.03 else ("ok", None))
        duration = None if code and rnd.random() < 0.5 else round(
            150 + tokens_out * 12 + rnd.expovariate(1 / 300), 1)
        cost = None if price_in is None else tokens_in * price_in + tokens_out * price_out
        yield (
            f"bench-{i}", ts, ts, routes[i], "prod" if rnd.random() < 0.95 else "staging",
            model, provider, rnd.choice(("us-east-1", "eu-west-1", "ap-south-1")),
            rnd.choice(("free", "pro", "enterprise")), tokens_in, tokens_out, duration, status,
            code, rnd.random() < 0.005, cost, cost is not None, f"prompt-{rnd.randrange(10)}",
            str(rnd.randrange(1, 4)), 1 if rnd.random() < 0.95 else rnd.choice((2, 2, 3)), "{}",
        )


def timed(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """(best, median) milliseconds per function, running them interleaved `repeat` times."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm caches and statement caches
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


def bench(db: Database, label: str, repeat: int) -> bool:
    """Print the figures for one backend; True when both targets are met (on best-of times)."""
    postgres = db.backend == "postgresql"
    route = ROUTES[0]
    met = True
    print(f"\n{label}")
    with db.read() as session:
        for name, span, target in WINDOWS:
            start, end = NOW - span, NOW
            params = {"route": route, "start": start if postgres else sqlite_ts(start),
                      "end": end if postgres else sqlite_ts(end)}
            fns: dict[str, Callable[[], object]] = {
                "full": lambda: window_stats(session, route, start, end),
                "baseline": lambda: session.execute(
                    text(PG_P95 if postgres else SQLITE_P95), params).scalar_one(),
            }
            reference = SQLITE_P95 if postgres else SQLITE_P95_DESC
            fns["reference"] = lambda: session.execute(text(reference), params).scalar_one()
            stats = window_stats(session, route, start, end)
            p95 = fns["baseline"]()
            assert stats.p95_duration_ms == p95 == fns["reference"](), (stats.p95_duration_ms, p95)
            _assert_same(stats, stats_for(session, route, start, end, fast_path_max_rows=0))
            times = timed(fns, repeat)
            (full, full_med), (base, base_med) = times["full"], times["baseline"]
            ratio = full / base
            met &= ratio <= target
            print(f"  {name:>4} window ({stats.calls:,} events, p95 {p95} ms): "
                  f"full stats {full:.2f} ms (median {full_med:.2f}) | p95 query {base:.2f} ms "
                  f"(median {base_med:.2f}) | ratio {ratio:.2f}x "
                  f"(median {full_med / base_med:.2f}x)"
                  f", target <= {target}x: {'met' if ratio <= target else 'NOT met'}")
            what = ("ORDER BY … LIMIT 1 OFFSET k" if postgres
                    else "fastest single p95 query (bounded DESC sort)")
            print(f"       reference: {what} {times['reference'][0]:.2f} ms "
                  f"→ ratio {full / times['reference'][0]:.2f}x")
    return met


def _assert_same(stats: object, bounded: object) -> None:
    """The stats equal the bounded path's (cost: up to the rounding of the summation order)."""
    one, other = stats.to_dict(), bounded.to_dict()  # type: ignore[attr-defined]
    cost, other_cost = one.pop("total_cost_usd"), other.pop("total_cost_usd")
    assert abs(cost - other_cost) <= 1e-9 * max(1.0, abs(cost)), (cost, other_cost)
    one.pop("cost_per_call_usd"), other.pop("cost_per_call_usd")
    assert one == other, (one, other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ok = on_each_backend(lambda: generate(args.events, args.seed),
                         lambda db, label: bench(db, label, args.repeat),
                         size=f"{args.events:,} events")
    print("all targets met" if ok else "some targets NOT met")

if __name__ == "__main__":
    main()
