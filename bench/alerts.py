"""Alert evaluation on a million events: one full run of the alert job vs 200 hand-written p95 queries.

Generates N events (default 1,000,000) over 7 days for 200 routes — Zipf-like traffic (the busiest
route gets about 17 %), plus a trickle of 2 calls per route in the last 15 minutes so every route
has traffic in every rule's window (the job's worst case in routes: 200 routes × 7 rules) — into a
temporary SQLite file with the real migrated schema (bulk insert with sqlite3.executemany, as
bench/metrics.py does). The `routes` registry, which ingest keeps, is filled with the real
`note_routes` (first/last seen per route). Some routes misbehave at the end (see MISBEHAVING and
BURSTS): token explosion, latency spike, flagged answers, errors, cost, and bursts of errors (503s,
429s) on three quiet routes.

Then, at NOW, with the 7 built-in rules (`alerts.rules.DEFAULT_RULES`), times:

- dry run:    `scheduler.alert_job.run_alerts(JobContext(db=...), NOW, dry_run=True)` — every
              rule on every route with traffic (the stats queries, the judgement), nothing stored;
- first run:  the same, not dry, from an empty alert state: every firing route is stored, gets its
              notification, its sparkline (12 windows of stats) and its outbox row (a SlackDelivery
              with an alert channel) — the most writing a run does; the state is emptied
              between repeats (not timed);
- steady run: not dry, with the state already stored (what every later interval does);
- baseline:   200 hand-written p95-duration queries over the 15 min window, one per route, in
              bench/metrics.py's form (`ORDER BY duration_ms LIMIT 1 OFFSET k` on SQLite,
              `percentile_disc(0.95)` on PostgreSQL).

Each figure is the best of --repeat runs (median alongside), the evaluations and the baseline
interleaved. The shift detector's part (a minute series and `detect` for each suspected rule ×
route) is the dry run's time minus that of a dry run with the detector stubbed out. Prints each evaluation in seconds, as a share of the default interval (60 s,
LLM_INCIDENT_ALERT_INTERVAL_SECONDS) — target: the heaviest of the three <= 10 % of the interval —
and its ratio to the baseline (for reference: how much the whole job costs next to the least one
query per route could). Before timing it checks that the expected routes fire. The load average
is printed: the figures are only as quiet as the box.

With LLM_INCIDENT_BENCH_PG_URL set (e.g. postgresql://postgres@127.0.0.1:5432/postgres) it does the
same on PostgreSQL, in a database it creates on that server and drops afterwards (COPY, then
VACUUM ANALYZE).

    python bench/alerts.py [--events 1000000] [--repeat 5] [--seed 7] [--trickle 2]

With `--trickle 60` every route has enough calls in the window to be judged, so every ratio rule
also reads its baseline window: the most stats queries an evaluation makes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.*
from bench.backends import on_each_backend, sqlite_ts  # noqa: E402
from bench.metrics import MODELS, NOW  # noqa: E402
from llm_incident.alerts import evaluate  # noqa: E402
from llm_incident.alerts.confirm import SeriesCache  # noqa: E402
from llm_incident.alerts.evaluate import CRITICAL, WARNING  # noqa: E402
from llm_incident.alerts.models import AlertNotification, AlertState  # noqa: E402
from llm_incident.alerts.rules import DEFAULT_RULES  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.events.routes import note_routes  # noqa: E402
from llm_incident.scheduler.alert_job import run_alerts  # noqa: E402
from llm_incident.scheduler.context import JobContext  # noqa: E402
from llm_incident.slack.models import OutboxMessage  # noqa: E402
from llm_incident.slack.outbox import SlackDelivery  # noqa: E402

INTERVAL_S = 60  # the default LLM_INCIDENT_ALERT_INTERVAL_SECONDS
TARGET_SHARE = 0.10
WINDOW = timedelta(minutes=15)
ALERT_CHANNEL = "C0ALERTS"
_AREAS = ("support", "search", "chat", "docs", "email", "code", "ticket", "kb", "sales", "notes",
          "translate", "sql", "moderation", "agent", "faq", "legal", "hr", "invoice", "onboarding",
          "billing")
_ACTIONS = ("reply", "summarize", "answer", "draft", "review", "triage", "rewrite", "classify",
            "extract", "plan")
ROUTES = [f"{area}.{action}" for action in _ACTIONS for area in _AREAS]  # 200, busiest first
TRICKLE = 2  # calls per route in the last 15 min, on top of the Zipf traffic
# route index → what goes wrong at the end (the last 15 min; "cost": the last hour)
MISBEHAVING = {0: "tokens", 1: "latency", 2: "flagged", 3: "errors", 5: "cost"}
# quiet routes: this many calls in the last 15 min, half of them errors (503s; "429": 429s)
BURSTS = {120: (100, "burst"), 160: (100, "burst"), 199: (100, "burst-429")}
EXPECTED = {  # (rule, route index) that must fire at NOW
    ("p95-tokens-out", 0), ("p95-duration", 1), ("flagged-rate", 2), ("error-rate", 3),
    ("cost-per-hour", 5), ("error-rate", 120), ("error-rate", 160), ("error-rate", 199),
    ("rate-limited", 199),
}


# The baseline: one hand-written nearest-rank p95 of duration per route (bench/metrics.py's
# former form).
SQLITE_P95 = """
SELECT duration_ms FROM events
WHERE route = :route AND ts >= :start AND ts < :end AND duration_ms IS NOT NULL
ORDER BY duration_ms LIMIT 1 OFFSET (
    SELECT (count(duration_ms) * 95 + 99) / 100 - 1 FROM events
    WHERE route = :route AND ts >= :start AND ts < :end)
"""
PG_P95 = """
SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM events
WHERE route = :route AND ts >= :start AND ts < :end
"""

def _row(i: int, ts: datetime, route: str, rnd: random.Random, trouble: str | None) -> tuple:
    """One event row (the columns of bench.backends.COLUMNS), bent by `trouble` when given."""
    model, provider, price_in, price_out, _ = rnd.choices(MODELS, [m[4] for m in MODELS])[0]
    tokens_in = int(rnd.lognormvariate(6.5, 0.6))
    tokens_out = int(rnd.lognormvariate(5.0, 0.8))
    if trouble == "tokens":
        tokens_out *= 6
    elif trouble == "cost":
        tokens_in, tokens_out = tokens_in * 8, tokens_out * 8
    roll = rnd.random()
    error_share = {"errors": 0.30, "burst": 0.5, "burst-429": 0.5}.get(trouble, 0.02)
    flagged_share = 0.20 if trouble == "flagged" else 0.01
    if roll < error_share:
        code = {"burst": "503", "burst-429": "429"}.get(trouble) or rnd.choice(
            ("429", "429", "503", "500"))
        status = "error"
    elif roll < error_share + flagged_share:
        status, code = "flagged", None
    else:
        status, code = "ok", None
    duration = None if code and rnd.random() < 0.5 else round(
        150 + tokens_out * 12 + rnd.expovariate(1 / 300), 1)
    if trouble == "latency" and duration is not None:
        duration *= 4
    cost = None if price_in is None else tokens_in * price_in + tokens_out * price_out
    return (
        f"bench-{i}", ts, ts, route, "prod" if rnd.random() < 0.95 else "staging",
        model, provider, rnd.choice(("us-east-1", "eu-west-1", "ap-south-1")),
        rnd.choice(("free", "pro", "enterprise")), tokens_in, tokens_out, duration, status,
        code, rnd.random() < 0.005, cost, cost is not None, f"prompt-{rnd.randrange(10)}",
        str(rnd.randrange(1, 4)), 1 if rnd.random() < 0.95 else rnd.choice((2, 2, 3)), "{}",
    )


def generate(n: int, seed: int) -> Iterator[tuple]:
    """N event rows over the 7 days before NOW: Zipf traffic, then the trickle and the bursts."""
    rnd = random.Random(seed)
    extra = TRICKLE * len(ROUTES) + sum(count for count, _ in BURSTS.values())
    if n <= extra:
        raise SystemExit(f"--events must be above {extra}")
    base = n - extra
    span = 7 * 86400
    offsets = sorted(rnd.random() * span for _ in range(base))
    picks = rnd.choices(range(len(ROUTES)), [1 / (i + 1) for i in range(len(ROUTES))], k=base)
    start = NOW - timedelta(days=7)
    recent, last_hour = NOW - WINDOW, NOW - timedelta(hours=1)
    for i in range(base):
        ts = start + timedelta(seconds=offsets[i])
        trouble = MISBEHAVING.get(picks[i])
        if trouble == "cost":
            trouble = trouble if ts >= last_hour else None
        elif ts < recent:
            trouble = None
        yield _row(i, ts, ROUTES[picks[i]], rnd, trouble)
    i = base
    for index, route in enumerate(ROUTES):
        for _ in range(TRICKLE):
            ts = NOW - WINDOW * rnd.random()
            yield _row(i, ts, route, rnd, MISBEHAVING.get(index))
            i += 1
    for index, (count, trouble) in BURSTS.items():
        for _ in range(count):
            yield _row(i, NOW - WINDOW * rnd.random(), ROUTES[index], rnd, trouble)
            i += 1


class Seen:
    """First and last event time per route, noted while the rows stream by."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[datetime, datetime]] = {}

    def watch(self, rows: Iterator[tuple]) -> Iterator[tuple]:
        for row in rows:
            ts, route = row[1], row[3]
            first, last = self.spans.get(route, (ts, ts))
            self.spans[route] = (min(first, ts), max(last, ts))
            yield row

    def store(self, db: Database) -> None:
        """The route registry as ingest would have left it (the real `note_routes`)."""
        rows = [{"route": r, "ts": t} for r, span in self.spans.items() for t in span]
        with db.write() as session:
            note_routes(session, rows)


def forget_alerts(db: Database) -> None:
    """Back to no alert state, no notification, no outbox row."""
    with db.write() as session:
        for table in (AlertNotification, AlertState, OutboxMessage):
            session.execute(delete(table))


def timed(fns: dict[str, Callable[[], object]], repeat: int,
          before: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """(best, median) seconds per function, interleaved `repeat` times; `before[name]` runs
    untimed before each run of `name`."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            if name in before:
                before[name]()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: (min(v), statistics.median(v)) for name, v in samples.items()}


def bench(db: Database, label: str, repeat: int) -> bool:
    """Print the figures for one backend; True when the target is met (on the best time)."""
    postgres = db.backend == "postgresql"
    jc = JobContext(db=db, rules=DEFAULT_RULES, alert_channel=ALERT_CHANNEL,
                    delivery=SlackDelivery(clock=lambda: NOW))
    print(f"\n{label}")

    # What the evaluation sees, and that the misbehaving routes fire.
    forget_alerts(db)
    dry = run_alerts(jc, NOW, dry_run=True)
    judged = [o for o in dry.observations if o.level is not None]
    firing = {(o.rule.id, o.route): o.level for o in judged if o.level in (WARNING, CRITICAL)}
    levels = {(o.rule.id, o.route): o for o in dry.observations}
    missing = {(rule, ROUTES[i]) for rule, i in EXPECTED} - set(firing)
    unjudged = sorted(key for key in missing if levels[key].level is None)
    wrong = sorted(key for key in missing if levels[key].level is not None)
    assert not wrong, f"expected alerts that did not fire: {wrong}"
    if unjudged:  # too few events for min_calls (a small --events)
        print("  not judged (too few calls): " + ", ".join(
            f"{rule} on {route} ({levels[rule, route].reason})" for rule, route in unjudged))
    first = run_alerts(jc, NOW)
    assert len(first.notifications) == len(firing), (len(first.notifications), len(firing))
    with db.read() as session:
        queued = session.execute(text("SELECT count(*) FROM slack_outbox")).scalar_one()
    assert queued == len(firing), (queued, len(firing))
    again = run_alerts(jc, NOW)
    assert again.notifications == [], again.notifications
    routes = len({o.route for o in dry.observations})
    print(f"  {routes} routes × {len(jc.rules)} rules = {len(dry.observations)} observations, "
          f"{len(judged)} with enough calls to judge, {len(firing)} firing "
          f"({sum(v == CRITICAL for v in firing.values())} critical):")
    for (rule, route), level in sorted(firing.items(), key=lambda kv: kv[0][1]):
        print(f"     {level:<8} {rule:<15} {route}")

    start, end = NOW - WINDOW, NOW
    params = [{"route": r, "start": start if postgres else sqlite_ts(start),
               "end": end if postgres else sqlite_ts(end)} for r in ROUTES]
    query = text(PG_P95 if postgres else SQLITE_P95)

    def baseline() -> None:
        with db.read() as session:
            for p in params:
                session.execute(query, p).scalar()

    fns: dict[str, Callable[[], object]] = {
        "dry": lambda: run_alerts(jc, NOW, dry_run=True),
        "first": lambda: run_alerts(jc, NOW),
        "steady": lambda: run_alerts(jc, NOW),
        "baseline": baseline,
    }
    baseline()  # warm caches and statement caches (the evaluations ran above)
    times = timed(fns, repeat, before={"first": lambda: forget_alerts(db)})
    base, base_med = times["baseline"]
    print(f"  baseline: {len(ROUTES)} p95 queries over {WINDOW.seconds // 60} min, one per route: "
          f"{base:.3f} s (median {base_med:.3f})")
    names = {"dry": "dry run   ", "first": f"first run (stores {len(firing)} alerts)",
             "steady": "steady run"}
    for key, name in names.items():
        best, med = times[key]
        print(f"  {name}: {best:.3f} s (median {med:.3f}) = {best / INTERVAL_S:.2%} of the "
              f"{INTERVAL_S} s interval | ratio to baseline {best / base:.2f}x "
              f"(median {med / base_med:.2f}x)")
    real, real_get = evaluate.confirm, SeriesCache.get
    evaluate.confirm = lambda _series, _rule, _recent: ([], "stubbed")
    SeriesCache.get = lambda _self, _route, _filter: None
    try:
        stubbed = timed({"stub": lambda: run_alerts(jc, NOW, dry_run=True)}, repeat, before={})
    finally:
        evaluate.confirm, SeriesCache.get = real, real_get
    detector = max(0.0, times["dry"][0] - stubbed["stub"][0])
    print(f"  of the dry run, the shift detector (minute series + detect on suspected rules): "
          f"{detector:.3f} s ({detector / times['dry'][0]:.0%}); without it {stubbed['stub'][0]:.3f} s")
    heaviest = max(times[key][0] for key in names) / INTERVAL_S
    met = heaviest <= TARGET_SHARE
    print(f"  heaviest run uses {heaviest:.2%} of the interval, target <= {TARGET_SHARE:.0%}: "
          f"{'met' if met else 'NOT met'}")
    return met


def main() -> None:
    global TRICKLE  # read by generate()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trickle", type=int, default=TRICKLE,
                        help="calls per route in the last 15 min on top of the Zipf traffic "
                             "(60: every route has enough calls to be judged — the worst case)")
    args = parser.parse_args()
    TRICKLE = args.trickle
    seen = Seen()  # the same rows each time, so the same spans for both backends
    ok = on_each_backend(lambda: seen.watch(generate(args.events, args.seed)),
                         lambda db, label: bench(db, label, args.repeat),
                         size=f"{args.events:,} events, {len(ROUTES)} routes", prepare=seen.store)
    print("target met" if ok else "target NOT met")

if __name__ == "__main__":
    main()
