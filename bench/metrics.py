"""Route window stats on a million events: `window_stats` vs one hand-written statement computing
the same stats.

Generates N events (default 1,000,000) over 7 days for 20 routes — Zipf-like traffic, the busiest
route gets about 28 % — into a temporary SQLite file with the real migrated schema (bulk insert
with sqlite3.executemany), then for the busiest route, over the last 1 h and the last 24 h, times:

- full:     `metrics.stats.window_stats(...)` on the exact path — counts, rates, error codes,
            p50/p95/p99 duration, avg/p95 tokens in/out, cost, retries, model mix;
- baseline: one hand-written statement per backend computing the same stat set: the counts and
            sums, the five exact nearest-rank percentiles (p50/p95/p99 duration, p95 tokens in and
            out), error codes and model mix. SQLite: aggregates plus one `ORDER BY … LIMIT 1
            OFFSET k` subquery per percentile (k from the count) and `json_group_object` for the
            mixes; PostgreSQL: `percentile_disc` (one sort for the three duration percentiles)
            and `json_object_agg` subqueries.

Before timing it checks that both give the same numbers (and the same as the bounded-memory
path, `fast_path_max_rows=0`). Each figure is the best of --repeat runs (median alongside), full
and baseline interleaved; targets: full / baseline <= 1.3x for 1 h and 24 h. Then it rolls the
events up (`rollups.build.roll_up`) and times the 24 h and 7 d windows on the rollup path
(approximate percentiles), for reference against the same baseline. The load average is
printed: the figures are only as quiet as the box.

With LLM_INCIDENT_BENCH_PG_URL set (e.g. postgresql://postgres@127.0.0.1:5432/postgres) it does the
same on PostgreSQL, in a database it creates on that server and drops afterwards.

    python bench/metrics.py [--events 1000000] [--repeat 15] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
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
from llm_incident.metrics.stats import stats_for  # noqa: E402
from llm_incident.rollups.build import roll_up  # noqa: E402

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
WINDOWS = (("1 h", timedelta(hours=1), 1.3), ("24 h", timedelta(hours=24), 1.3))
TARGET = 1.3

_WINDOW = "route = :route AND ts >= :start AND ts < :end"
_IS_ERROR = "(status = 'error' OR error_code IS NOT NULL)"
_IS_FLAGGED = "(status = 'flagged' OR contains_banned)"


def _sqlite_rank(column: str, p: int) -> str:
    """The nearest-rank p-th percentile of `column` in the window, as one subquery."""
    return (f"(SELECT {column} FROM events WHERE {_WINDOW} AND {column} IS NOT NULL "
            f"ORDER BY {column} LIMIT 1 OFFSET (SELECT (count({column}) * {p} + 99) / 100 - 1 "
            f"FROM events WHERE {_WINDOW}))")


SQLITE_STATS = f"""
SELECT count(*), sum({_IS_FLAGGED}), sum({_IS_ERROR}), sum(attempt > 1), sum(priced),
       sum(CASE WHEN priced THEN cost_usd END),
       count(tokens_in), sum(tokens_in), count(tokens_out), sum(tokens_out),
       {_sqlite_rank("duration_ms", 50)}, {_sqlite_rank("duration_ms", 95)},
       {_sqlite_rank("duration_ms", 99)}, {_sqlite_rank("tokens_in", 95)},
       {_sqlite_rank("tokens_out", 95)},
       (SELECT json_group_object(code, n) FROM (
           SELECT coalesce(error_code, 'unknown') AS code, count(*) AS n FROM events
           WHERE {_WINDOW} AND {_IS_ERROR} GROUP BY 1)),
       (SELECT json_group_object(coalesce(model, 'unknown'), n) FROM (
           SELECT model, count(*) AS n FROM events WHERE {_WINDOW} GROUP BY model))
FROM events WHERE {_WINDOW}
"""
PG_STATS = f"""
SELECT count(*), count(*) FILTER (WHERE {_IS_FLAGGED}), count(*) FILTER (WHERE {_IS_ERROR}),
       count(*) FILTER (WHERE attempt > 1), count(*) FILTER (WHERE priced),
       sum(cost_usd) FILTER (WHERE priced),
       count(tokens_in), sum(tokens_in), count(tokens_out), sum(tokens_out),
       percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms),
       percentile_disc(0.95) WITHIN GROUP (ORDER BY tokens_in),
       percentile_disc(0.95) WITHIN GROUP (ORDER BY tokens_out),
       (SELECT json_object_agg(code, n) FROM (
           SELECT coalesce(error_code, 'unknown') AS code, count(*) AS n FROM events
           WHERE {_WINDOW} AND {_IS_ERROR} GROUP BY 1) c),
       (SELECT json_object_agg(coalesce(model, 'unknown'), n) FROM (
           SELECT model, count(*) AS n FROM events WHERE {_WINDOW} GROUP BY model) m)
FROM events WHERE {_WINDOW}
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


def _baseline_stats(row: tuple, postgres: bool) -> dict:
    """The baseline statement's row as the stats `window_stats` reports."""
    calls, flagged, errors, retries, priced, cost, n_in, sum_in, n_out, sum_out = row[:10]
    if postgres:
        durations, p95_in, p95_out, codes, models = row[10:]
    else:
        p50, p95, p99, p95_in, p95_out, codes, models = row[10:]
        durations = [p50, p95, p99]
        codes, models = json.loads(codes) if codes else {}, json.loads(models) if models else {}
    return {"calls": calls, "flagged": int(flagged), "errors": int(errors),
            "retries": int(retries), "priced_calls": int(priced),
            "total_cost_usd": float(cost or 0), "avg_tokens_in": int(sum_in) / n_in,
            "avg_tokens_out": int(sum_out) / n_out,
            "p50_duration_ms": durations[0], "p95_duration_ms": durations[1],
            "p99_duration_ms": durations[2], "p95_tokens_in": p95_in, "p95_tokens_out": p95_out,
            "error_codes": codes or {}, "model_mix": models or {}}


def _assert_baseline_agrees(stats: object, baseline: dict) -> None:
    for name, value in baseline.items():
        mine = getattr(stats, name)
        if name == "total_cost_usd":
            assert abs(mine - value) <= 1e-9 * max(1.0, abs(value)), (name, mine, value)
        elif isinstance(value, float):
            assert abs(mine - value) <= 1e-9 * max(1.0, abs(value)), (name, mine, value)
        else:
            assert mine == value, (name, mine, value)


def bench(db: Database, label: str, repeat: int) -> bool:
    """Print the figures for one backend; True when both targets are met (on best-of times)."""
    postgres = db.backend == "postgresql"
    route = ROUTES[0]
    met = True
    statement = text(PG_STATS if postgres else SQLITE_STATS)
    print(f"\n{label}")

    def params(start: datetime, end: datetime) -> dict:
        return {"route": route, "start": start if postgres else sqlite_ts(start),
                "end": end if postgres else sqlite_ts(end)}

    with db.read() as session:
        for name, span, target in WINDOWS:
            start, end = NOW - span, NOW
            bound = params(start, end)
            fns: dict[str, Callable[[], object]] = {
                "full": lambda: stats_for(session, route, start, end, path="exact"),
                "baseline": lambda: session.execute(statement, bound).one(),
            }
            stats = stats_for(session, route, start, end, path="exact")
            _assert_baseline_agrees(stats, _baseline_stats(fns["baseline"](), postgres))
            _assert_same(stats, stats_for(session, route, start, end, fast_path_max_rows=0,
                                          path="exact"))
            times = timed(fns, repeat)
            (full, full_med), (base, base_med) = times["full"], times["baseline"]
            ratio = full / base
            met &= ratio <= target
            print(f"  {name:>4} window ({stats.calls:,} events): full stats {full:.2f} ms "
                  f"(median {full_med:.2f}) | one hand-written statement {base:.2f} ms "
                  f"(median {base_med:.2f}) | ratio {ratio:.2f}x "
                  f"(median {full_med / base_med:.2f}x), target <= {target}x: "
                  f"{'met' if ratio <= target else 'NOT met'}")
    started = time.perf_counter()
    run = roll_up(db, NOW + timedelta(minutes=5), max_batches=10**6)
    print(f"  rolled up {run.events:,} events in {time.perf_counter() - started:.1f} s")
    with db.read() as session:
        for name, span in (("24 h", timedelta(hours=24)), ("7 d", timedelta(days=7))):
            start, end = NOW - span, NOW
            bound = params(start, end)
            exact = stats_for(session, route, start, end, path="exact")
            fns = {"rollups": lambda: stats_for(session, route, start, end, path="rollups"),
                   "baseline": lambda: session.execute(statement, bound).one()}
            approx = fns["rollups"]()
            assert approx.approximate and approx.calls == exact.calls
            times = timed(fns, max(3, repeat // 3))
            print(f"  {name:>4} window from rollups ({approx.precision}): "
                  f"{times['rollups'][0]:.2f} ms | one hand-written statement on raw events "
                  f"{times['baseline'][0]:.2f} ms | ratio "
                  f"{times['rollups'][0] / times['baseline'][0]:.2f}x "
                  f"(p95 {approx.p95_duration_ms:.1f} ms vs exact {exact.p95_duration_ms} ms)")
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
