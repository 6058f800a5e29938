"""Alert quality: simulated route-weeks replayed through the real alert job with a frozen clock.

Traffic per route (numpy, seeded): Poisson calls at `rate` calls/min shaped by a daily rhythm
(1 + 0.5 cos: 3× between the night trough and the afternoon peak), weekends at 0.6×, and an
hourly jitter of the rate (lognormal σ 0.1). Per call: tokens_out lognormal (median 300, σ 0.5),
duration (300 ms + 2.5 ms per output token) × lognormal σ 0.2, tokens_in normal 1,500 ± 300,
flagged 3 %, errors 1 % (500/503), 429s 0.3 %, cost from the tokens (one price; a "cost"
regression is a model switch to a pricier one).

Each simulated route-week (8 days: a day of history, then the week evaluated) holds
regressions at random times, one per slot of the week, `DURATION` long, in random order:
tokens_out, duration, flagged rate, error rate and cost per call ×2, ×4 and ×8, a 429 storm (30 %
of calls) and a silent route (no calls). Clean route-weeks hold none.

Replay: `scheduler.alert_job.run_alerts(jc, now)` — the real job, storing state (pending
warnings, levels, notifications) — with the built-in rules (`DEFAULT_RULES`, aimed at the route),
at a frozen `now` stepping every minute from 2 min before each regression to 15 min into it,
then every 3 minutes to 20 min after it; elsewhere every `--step` minutes (5) in clean weeks and
every 15 in weeks with regressions. A regression is *detected* when the rule that
watches its metric notifies warning or critical on the route during it; the delay is from its
start. A regression is *expected* to alert when its effect reaches the rule's warning level
(error rate ×2 and ×4 = 2 % and 4 % stay under the absolute 5 %: not expected). A *false alert*
is a new alert (ok → warning or critical) outside any regression and the 30 minutes after it.

Sampled (the full grid at 200 calls/min is 2 M events per route-week): by default 2 route-weeks
with regressions at 5 and at 30 calls/min, 1 route of `--days-200` (3) days at 200 calls/min
(the 17 regressions every ~4 h), and one clean route-week at 5 and at 30 calls/min plus
`--clean-days-200` (2) clean days at 200 (each after a day of history). Fresh install: 3 h of
history and an 8× tokens_out explosion 20 min ago, at 5, 30 and 200 calls/min: alerted by the
first evaluation? and replayed from the install minute by minute.

Targets: the issue's (recall ≥ 95 % of the expected ≥ 2× regressions, delay p95 ≤ 3 min at
≥ 30 calls/min and ≤ 10 at 5, ≤ 1 false alert per route-week) and fair ones: per regression,
max(the issue's delay target, the information bound at the calls/min of that moment + 1 min),
the bound being the minutes of traffic a one-sided oracle test (onset and rate before known,
95 % power) needs to see the jump (bench/alert_bounds.py) — e.g. a flagged rate of 3 %
doubling needs ~1,000 calls at α = 1e-3: 35 min at 30 calls/min. Two α: 1e-3 (lenient) and
2e-4, the per-look α that ≤ 1 false alert per route-week allows at ~4,700 looks. Fair recall
counts the regressions whose fair target fits in the regression's 45 min. `--trace` prints,
for each regression detected after its fair target (or never) and each alert on one under its
rule's level, what the rule saw at every evaluation, and for each false alert what it saw in
the 10 minutes before.

SQLite (a temporary file, bulk insert as bench/metrics.py does; `--db PATH` keeps and reuses
it), or PostgreSQL with `--pg URL` (a throwaway database: bench.backends.postgres_db). The
events are rolled up once (`rollups.build.roll_up`, as the storage job keeps them; baselines
read the rollups). The route registry is filled once with each route's first and last event
(ingest would keep last_seen current; the replay does not, which only affects the wording "no
traffic since").

    python bench/alert_quality.py [--seed 3] [--step 5] [--days-200 3] [--clean-days-200 2]
        [--rates 5,30,200] [--quick] [--trace] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.*
from bench.alert_bounds import minutes_for, rate_calls, shift_calls, silence_minutes  # noqa: E402
from bench.backends import COLUMNS, postgres_db  # noqa: E402
from llm_incident.alerts.evaluate import CRITICAL, WARNING  # noqa: E402
from llm_incident.alerts.rules import DEFAULT_RULES  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.events.routes import note_routes  # noqa: E402
from llm_incident.migrate import upgrade  # noqa: E402
from llm_incident.rollups.build import roll_up  # noqa: E402
from llm_incident.scheduler.alert_job import run_alerts  # noqa: E402
from llm_incident.scheduler.context import JobContext  # noqa: E402

START = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)  # a Monday
MIN = timedelta(minutes=1)
DURATION = timedelta(minutes=45)
AFTER = timedelta(minutes=30)   # alerts this long after a regression ends are not false
FLAGGED, ERRORS, RATE_429 = 0.03, 0.01, 0.003
PRICE_IN, PRICE_OUT = 1e-6, 4e-6
KINDS = [(metric, k) for metric in ("tokens", "duration", "flagged", "errors", "cost")
         for k in (2, 4, 8)] + [("429", 0), ("silent", 0)]
RULE_OF = {"tokens": "p95-tokens-out", "duration": "p95-duration", "flagged": "flagged-rate",
           "errors": "error-rate", "cost": "cost-per-hour", "429": "rate-limited",
           "silent": "silent-route"}
RULES = {r.id: r for r in DEFAULT_RULES}
# the oracle's α: lenient, and the per-look α that ≤ 1 false alert per route-week allows at
# ~4,700 looks (bench/alert_bounds.py)
FAIR_ALPHAS = (1e-3, 2e-4)


def expected(metric: str, k: int) -> bool:
    """Does the regression reach the warning level of the rule that watches it?"""
    if metric == "errors":
        return ERRORS * k >= RULES["error-rate"].warning
    return True


@dataclass
class Injection:
    metric: str
    k: int
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + DURATION


@dataclass
class RouteCase:
    route: str
    rate: float
    start: datetime            # first event
    evaluate_from: datetime
    end: datetime
    injections: list[Injection] = field(default_factory=list)
    fresh: bool = False

    def rate_at(self, moment: datetime) -> float:
        """The expected calls/min at `moment` (rhythm and weekend, without the jitter)."""
        hour = (moment.timestamp() % 86400) / 3600
        weekend = moment.weekday() >= 5
        return self.rate * (1 + 0.5 * math.cos(2 * math.pi * (hour - 15) / 24)) * (
            0.6 if weekend else 1.0)


def simulate(rng: np.random.Generator, case: RouteCase, zone: str = "") -> list[tuple]:
    """The route's events as rows in bench.backends.COLUMNS order (ts as SQLite text; with
    `zone` "+00" as PostgreSQL's COPY reads a UTC time)."""
    minutes = int((case.end - case.start) / MIN)
    t = np.arange(minutes)
    moments = np.array([case.start.timestamp()]) + t * 60.0
    hour = (moments % 86400) / 3600
    weekday = ((moments // 86400).astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    jitter = np.exp(rng.normal(0, 0.1, size=minutes // 60 + 1))[t // 60]
    lam = case.rate * (1 + 0.5 * np.cos(2 * np.pi * (hour - 15) / 24)) * np.where(
        weekday >= 5, 0.6, 1.0) * jitter  # as RouteCase.rate_at
    for inj in case.injections:
        if inj.metric == "silent":
            a, b = (int((x - case.start) / MIN) for x in (inj.start, inj.end))
            lam[max(a, 0):max(b, 0)] = 0.0
    counts = rng.poisson(lam)
    n = int(counts.sum())
    ts = np.repeat(moments, counts) + rng.uniform(0, 60, n)
    tokens_out = np.maximum(1, np.round(rng.lognormal(math.log(300), 0.5, n)))
    tokens_in = np.maximum(50, np.round(rng.normal(1500, 300, n)))
    duration = (300 + 2.5 * tokens_out) * rng.lognormal(0, 0.2, n)
    flagged_p = np.full(n, FLAGGED)
    error_p = np.full(n, ERRORS)
    p429 = np.full(n, RATE_429)
    price = np.ones(n)
    attempt = np.ones(n, dtype=int)
    for inj in case.injections:
        on = (ts >= inj.start.timestamp()) & (ts < inj.end.timestamp())
        if inj.metric == "tokens":
            tokens_out = np.where(on, tokens_out * inj.k, tokens_out)
            duration = np.where(on, (300 + 2.5 * tokens_out) * rng.lognormal(0, 0.2, n), duration)
        elif inj.metric == "duration":
            duration = np.where(on, duration * inj.k, duration)
        elif inj.metric == "flagged":
            flagged_p = np.where(on, FLAGGED * inj.k, flagged_p)
        elif inj.metric == "errors":
            error_p = np.where(on, ERRORS * inj.k, error_p)
        elif inj.metric == "cost":
            price = np.where(on, inj.k, price)
        elif inj.metric == "429":
            p429 = np.where(on, 0.3, p429)
            attempt = np.where(on & (rng.random(n) < 0.3), 2, attempt)
    roll = rng.random(n)
    is429 = roll < p429
    is_error = ~is429 & (roll < p429 + error_p)
    is_flagged = ~is429 & ~is_error & (roll < p429 + error_p + flagged_p)
    cost = (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) * price
    stamps = np.char.replace(np.datetime_as_string(
        (ts * 1e6).astype("datetime64[us]"), unit="us"), "T", " ")
    stamps = np.char.add(stamps, zone).tolist() if zone else stamps.tolist()
    codes = np.where(is429, "429", np.where(is_error, np.where(roll < 0.5, "500", "503"), ""))
    status = np.where(is429 | is_error, "error", np.where(is_flagged, "flagged", "ok"))
    model = np.where(price > 1, "big-model", "small-model")
    rows = []
    for i, (stamp, code, st, mdl, t_in, t_out, dur, c, att) in enumerate(zip(
            stamps, codes.tolist(), status.tolist(), model.tolist(), tokens_in.tolist(),
            tokens_out.tolist(), duration.tolist(), cost.tolist(), attempt.tolist())):
        rows.append((f"{case.route}-{i}", stamp, stamp, case.route, "prod", mdl, "provider",
                     "us-east-1", "pro", int(t_in), int(t_out), round(dur, 1), st, code or None,
                     False, c, True, "p", "1", att, "{}"))
    return rows


def load(path: Path, cases: list[RouteCase], rng: np.random.Generator) -> tuple[Database, int]:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                          "AND tbl_name = 'events' AND sql IS NOT NULL").fetchall()
    con.execute("BEGIN")
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')
    total, spans = 0, []
    for case in cases:
        rows = simulate(rng, case)
        con.executemany(f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * 21)})", rows)
        total += len(rows)
        spans += _span(case, rows)
    for _, sql in indexes:
        con.execute(sql)
    con.execute("COMMIT")
    con.close()
    db = Database(f"sqlite:///{path}")
    with db.write() as session:
        note_routes(session, spans)
    return db, total


def _span(case: RouteCase, rows: list[tuple]) -> list[dict]:
    """The route's first and last event, for the route registry."""
    return [{"route": case.route, "ts": datetime.fromisoformat(rows[i][1][:26]).replace(
        tzinfo=timezone.utc)} for i in (0, -1)]


@contextmanager
def database(args: argparse.Namespace, cases: list[RouteCase], rng: np.random.Generator
             ) -> Iterator[tuple[Database, int]]:
    """The events of `cases` in a temporary SQLite file (or `--db`), or with `--pg URL` in a
    throwaway PostgreSQL database (bench.backends: COPY, VACUUM ANALYZE, dropped after)."""
    if args.pg:
        spans: list[dict] = []
        counted = [0]

        def rows() -> Iterator[tuple]:
            for case in cases:
                batch = simulate(rng, case, zone="+00")
                counted[0] += len(batch)
                spans.extend(_span(case, batch))
                yield from batch

        def prepare(db: Database) -> None:
            with db.write() as session:
                note_routes(session, spans)
            roll_up_all(db, cases)

        with postgres_db(args.pg, rows(), prepare) as db:
            yield db, counted[0]
        return
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or Path(folder) / "quality.db"
        if args.db and args.db.exists():
            db, total = Database(f"sqlite:///{path}"), 0
            with db.write() as session:
                session.execute(text("DELETE FROM alert_states"))
                session.execute(text("DELETE FROM alert_notifications"))
        else:
            db, total = load(path, cases, rng)
        roll_up_all(db, cases)  # on a kept file: only what it does not hold yet
        try:
            yield db, total
        finally:
            db.dispose()


def roll_up_all(db: Database, cases: list[RouteCase]) -> None:
    """The rollups of every event, as the storage job keeps them in service (baselines read
    them)."""
    roll_up(db, max(case.end for case in cases) + timedelta(minutes=5), max_batches=10**6)


def instants(case: RouteCase, step: timedelta) -> list[datetime]:
    """Every `step` over the evaluated span, every minute around each regression."""
    moments = set()
    t = case.evaluate_from
    while t < case.end:
        moments.add(t)
        t += step
    for inj in case.injections:
        t = inj.start - 2 * MIN
        while t < min(inj.end + 20 * MIN, case.end):
            moments.add(t)
            t += MIN if t < inj.start + 15 * MIN else 3 * MIN
    return sorted(m for m in moments if case.evaluate_from <= m < case.end)


def replay(db: Database, case: RouteCase, step: timedelta
           ) -> tuple[list, int, float, dict[str, list]]:
    """(notifications to warning/critical, evaluations, seconds, the trace: per rule id the
    (now, observation) of every evaluation) of the job over the case."""
    rules = tuple(r.model_copy(update={"route": case.route}) for r in DEFAULT_RULES)
    jc = JobContext(db=db, rules=rules)
    fired, moments = [], instants(case, step)
    trace: dict[str, list] = defaultdict(list)
    started = time.perf_counter()
    for now in moments:
        run = run_alerts(jc, now)
        fired += [n for n in run.notifications if n.level in (WARNING, CRITICAL)]
        held = {(p.observation.rule.id): p.until for p in run.held}
        for o in run.observations:
            trace[o.rule.id].append((now, o, held.get(o.rule.id)))
    return fired, len(moments), time.perf_counter() - started, trace


def week_case(route: str, rate: float, rng: np.random.Generator, *, days: int = 7,
              inject: bool = True) -> RouteCase:
    first = START + timedelta(days=int(rng.integers(0, 7)))  # weeks start on any weekday
    case = RouteCase(route, rate, first, first + timedelta(days=1),
                     first + timedelta(days=1 + days))
    if inject:
        order = rng.permutation(len(KINDS))
        slot = (case.end - case.evaluate_from - timedelta(hours=1)) / len(KINDS)
        for i, index in enumerate(order):
            metric, k = KINDS[index]
            offset = timedelta(seconds=float(rng.uniform(0, (slot - DURATION - AFTER)
                                                         .total_seconds())))
            case.injections.append(Injection(metric, k, case.evaluate_from + slot * i + offset))
    return case


def fresh_case(route: str, rate: float, now: datetime) -> RouteCase:
    case = RouteCase(route, rate, now - timedelta(hours=3), now - timedelta(hours=3) + 10 * MIN,
                     now, fresh=True)
    case.injections.append(Injection("tokens", 8, now - 20 * MIN))
    return case


@lru_cache(maxsize=None)
def log_spread(metric: str) -> float:
    """σ of the log of the value a jump of `metric` multiplies (as `simulate` draws it)."""
    rng = np.random.default_rng(0)
    tokens_out = np.maximum(1, np.round(rng.lognormal(math.log(300), 0.5, 100_000)))
    if metric == "tokens":
        return float(np.log(tokens_out).std())
    if metric == "duration":
        return float(np.log((300 + 2.5 * tokens_out) * rng.lognormal(0, 0.2, tokens_out.size))
                     .std())
    tokens_in = np.maximum(50, np.round(rng.normal(1500, 300, tokens_out.size)))
    return float(np.log(tokens_in * PRICE_IN + tokens_out * PRICE_OUT).std())


def bound(metric: str, k: int, per_min: float, alpha: float) -> float:
    """Minutes a one-sided oracle test at `alpha` needs to see the regression
    (bench/alert_bounds.py)."""
    if metric == "silent":
        return silence_minutes(per_min, alpha)
    if metric in ("flagged", "errors", "429"):
        p0 = {"flagged": FLAGGED, "errors": ERRORS, "429": RATE_429}[metric]
        return minutes_for(rate_calls(p0, 0.3 if metric == "429" else p0 * k, alpha), per_min)
    return minutes_for(shift_calls(log_spread(metric), k, alpha), per_min)


def fair_target(metric: str, k: int, nominal: float, per_min: float, alpha: float) -> float:
    """The issue's delay target for the route's nominal rate, or the information bound at the
    calls/min of the moment plus the minute an evaluation on whole minutes needs, when that
    is longer."""
    return max(target_delay(nominal), math.ceil(bound(metric, k, per_min, alpha)) + 1)


def score(case: RouteCase, fired: list) -> tuple[list[tuple], int]:
    """Per injection (metric, k, expected, delay minutes or None, fair targets: one per
    `FAIR_ALPHAS`); false alerts."""
    results = []
    for inj in case.injections:
        rule = RULE_OF[inj.metric]
        hits = [n for n in fired if n.rule_id == rule and inj.start <= _aware(n.ts) < inj.end]
        delay = (_aware(min(hits, key=lambda n: n.ts).ts) - inj.start) / MIN if hits else None
        results.append((inj.metric, inj.k, expected(inj.metric, inj.k), delay,
                        tuple(fair_target(inj.metric, inj.k, case.rate, case.rate_at(inj.start),
                                          alpha) for alpha in FAIR_ALPHAS)))
    false = [n for n in fired if n.previous_level == "ok" and not any(
        inj.start <= _aware(n.ts) < inj.end + AFTER for inj in case.injections)]
    return results, len(false), false


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--step", type=int, default=5, help="minutes between evaluations "
                        "outside the regressions")
    parser.add_argument("--days-200", type=int, default=3, help="days of the 200 calls/min "
                        "route with the 17 regressions")
    parser.add_argument("--clean-days-200", type=int, default=2, help="clean days at 200 "
                        "calls/min")
    parser.add_argument("--quick", action="store_true", help="one route-week per rate, no "
                        "clean weeks (a smoke run)")
    parser.add_argument("--trace", action="store_true", help="per regression detected late or "
                        "never: what its rule saw at each evaluation")
    parser.add_argument("--rates", default="5,30,200", help="calls/min to run (comma list)")
    parser.add_argument("--pg", metavar="URL", help="run on PostgreSQL: a throwaway database on "
                        "this server, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db", type=Path, help="keep the SQLite file here and reuse it when it "
                        "exists (same seed and options: the same events)")
    args = parser.parse_args()
    rates = {float(r) for r in args.rates.split(",")}
    rng = np.random.default_rng(args.seed)
    step = timedelta(minutes=args.step)
    weeks = 1 if args.quick else 2
    cases: list[RouteCase] = []
    for rate in (5, 30):
        cases += [week_case(f"r{rate}.w{i}", rate, rng) for i in range(weeks)]
        if not args.quick:
            cases.append(week_case(f"r{rate}.clean", rate, rng, inject=False))
    cases.append(week_case("r200.w0", 200, rng, days=args.days_200))
    if not args.quick:
        cases.append(week_case("r200.clean", 200, rng, days=args.clean_days_200, inject=False))
    fresh_now = START + timedelta(days=20, hours=14)
    cases += [fresh_case(f"fresh.r{rate}", rate, fresh_now) for rate in (5, 30, 200)]
    cases = [c for c in cases if c.rate in rates]

    started = time.perf_counter()
    with database(args, cases, rng) as (db, total):
        print(f"{'PostgreSQL' if args.pg else 'SQLite'}: {total:,} events for {len(cases)} "
              f"routes loaded in {time.perf_counter() - started:.0f} s")
        table: dict[tuple, list] = defaultdict(list)
        false_by_rate: dict[float, list] = defaultdict(list)
        fresh_lines = []
        for case in cases:
            if case.fresh:
                first = run_alerts(JobContext(db=db, rules=tuple(
                    r.model_copy(update={"route": case.route}) for r in DEFAULT_RULES)),
                    case.end - MIN, dry_run=True)
                at_once = sorted(f"{o.rule.id} {o.level}" for o in first.observations
                                 if o.level in (WARNING, CRITICAL))
                fired, evals, seconds, trace = replay(db, case, MIN)
                (_m, _k, _e, delay, _f), = score(case, fired)[0]
                fresh_lines.append(
                    f"  {case.rate:>4g}/min: first evaluation 19 min into the explosion: "
                    f"{', '.join(at_once) or 'NO ALERT'}; replayed minute by minute from the "
                    f"install: p95-tokens-out alerted {_minutes(delay)} after the onset")
                continue
            fired, evals, seconds, trace = replay(db, case,
                                                  3 * step if case.injections else step)
            results, false, false_notes = score(case, fired)
            span_weeks = (case.end - case.evaluate_from) / timedelta(days=7)
            false_by_rate[case.rate].append((false, span_weeks))
            for inj, (metric, k, exp, delay, fair) in zip(case.injections, results):
                table[(case.rate, metric, k)].append((exp, delay, fair))
                if args.trace and (exp and (delay is None or delay > fair[0]) or not exp and delay
                                   is not None):
                    print_trace(case, inj, delay, trace[RULE_OF[metric]])
            if args.trace:
                for note in false_notes:
                    print_false_trace(case, note, trace[note.rule_id])
            print(f"  {case.route}: {evals} evaluations in {seconds:.0f} s "
                  f"({seconds / evals * 1000:.0f} ms each), {len(case.injections)} regressions, "
                  f"{false} false alert(s)"
                  + "".join(f"\n      false: {n.rule_id} {n.level} at {n.ts:%a %H:%M} "
                            f"({n.reason}; {n.basis}){_near(case, n)}" for n in false_notes[:8]))
    print_table(table, false_by_rate, fresh_lines)
    print(f"total {time.perf_counter() - started:.0f} s")


def _fair_line(exp: list[tuple[float | None, float]], alpha: float) -> str:
    """The fair targets at one α: recall of the regressions detectable within a regression's
    length, how many were caught within their target, the p95 of delay − target."""
    detectable = [(d, f) for d, f in exp if f <= DURATION / MIN]
    caught = [d for d, f in detectable if d is not None]
    late = [d - f for d, f in detectable if d is not None]
    within = sum(x <= 0 for x in late)
    return (f"      fair targets (α = {alpha:g}): {len(detectable)} of {len(exp)} detectable "
            f"within the {DURATION / MIN:.0f} min of a regression (information bound + 1 min ≤ "
            f"it); recall {len(caught) / len(detectable) if detectable else float('nan'):.1%} "
            f"of those (target ≥ 95 %); {within}/{len(detectable)} within max(issue target, "
            f"bound + 1 min); p95 of delay − fair target "
            f"{'-' if not late else f'{p95(late):+.0f}'} min (target ≤ 0)")


def target_delay(rate: float) -> float:
    """The issue's delay target (minutes) at this traffic (≥ 30 calls/min: 3, else 10)."""
    return 3 if rate >= 30 else 10


def print_trace(case: RouteCase, inj: Injection, delay: float | None, trace: list) -> None:
    """What the watching rule saw at each evaluation from the regression's start to its alert."""
    earlier = [i for i in case.injections if i.end <= inj.start]
    last = max(earlier, key=lambda i: i.end, default=None)
    gap = f"; {last.metric} ×{last.k} ended {(inj.start - last.end) / MIN:.0f} min before" \
        if last is not None and inj.start - last.end < 3 * timedelta(hours=1) else ""
    print(f"    trace {case.route} {inj.metric} ×{inj.k} from {inj.start:%a %H:%M:%S} "
          f"(≈{case.rate_at(inj.start):.0f} calls/min): alerted {_minutes(delay)}{gap}")
    until = inj.start + (timedelta(minutes=delay + 1) if delay is not None else DURATION)
    for now, o, held in trace:
        if not inj.start - MIN <= now <= until:
            continue
        _print_observation(now - inj.start, o)
        print(f" | held by the cooldown until {held:%H:%M}" if held else "")


def print_false_trace(case: RouteCase, note, trace: list) -> None:  # noqa: ANN001
    """What the rule saw in the 10 minutes up to a false alert."""
    at = _aware(note.ts)
    print(f"    trace {case.route} false {note.rule_id} {note.level} at {at:%a %H:%M}")
    for now, o, _held in trace:
        if at - 10 * MIN <= now <= at:
            _print_observation(now - at, o)
            print()


def _print_observation(offset: timedelta, o) -> None:  # noqa: ANN001 - an Observation
    ratio = f" ×{o.ratio:.2f}" if o.ratio is not None and o.rule.compare != "absolute" else ""
    value = "-" if o.value is None else f"{o.value:.4g}"
    base = "" if o.baseline is None else f" vs {o.baseline:.4g}"
    print(f"      +{offset / MIN:5.1f} {o.shown_level:<16} {value}{base}{ratio} "
          f"n={o.calls} onset={o.onset and f'{o.onset:%H:%M}'} | {o.reason} | {o.basis}",
          end="")


def _near(case: RouteCase, note) -> str:  # noqa: ANN001 - an AlertNotification
    """The regression closest before a false alert, if any within 3 h."""
    before = [i for i in case.injections if i.start <= _aware(note.ts)]
    if not before:
        return ""
    last = max(before, key=lambda i: i.start)
    gap = (_aware(note.ts) - last.end) / MIN
    return f" [{gap:.0f} min after {last.metric} ×{last.k}]" if gap < 180 else ""


def _minutes(delay: float | None) -> str:
    return "never" if delay is None else f"{delay:.0f} min"


def print_table(table: dict, false_by_rate: dict, fresh_lines: list[str]) -> None:
    """Per rate and regression, then per rate: the issue's targets and the fair ones."""
    print("\nrate/min  regression  cases  expected  detected  delay p50/p95 (min)  "
          "fair target p50 (min)  within it")
    summary: dict[float, list] = defaultdict(list)
    for (rate, metric, k), items in sorted(table.items()):
        name = f"{metric} ×{k}" if k else metric
        exp = [(d, f) for e, d, f in items if e]
        hit = sorted(d for d, _f in exp if d is not None)
        if not exp:
            print(f"{rate:>8g}  {name:<11} {len(items):>5}  {'no':>8}  "
                  f"{sum(d is not None for _e, d, _f in items):>8}  (under the rule's level)")
            continue
        middle = f"{hit[len(hit) // 2]:.0f}" if hit else "-"
        worst = p95(hit)
        fair = sorted(f[0] for _d, f in exp)
        within = sum(d is not None and d <= f[0] for d, f in exp)
        print(f"{rate:>8g}  {name:<11} {len(items):>5}  {len(exp):>8}  {len(hit):>8}  "
              f"{middle:>5} / {'-' if worst is None else f'{worst:.0f}':<5}          "
              f"{fair[len(fair) // 2]:>6.0f}          {within}/{len(exp)}")
        if k == 0 or k >= 2:
            summary[rate] += exp
    print()
    for rate, exp in sorted(summary.items()):
        hit = [d for d, _f in exp if d is not None]
        recall = len(hit) / len(exp) if exp else float("nan")
        worst = p95(hit)
        false, weeks = (sum(x) for x in zip(*false_by_rate[rate])) if false_by_rate[rate] else (
            0, 0)
        print(f"{rate:>4g} calls/min: recall {recall:.1%} ({len(hit)}/{len(exp)}) of the "
              f"expected ≥2× regressions; delay p95 {'-' if worst is None else f'{worst:.0f}'} "
              f"min (target ≤ {target_delay(rate):g}); {false} false alert(s) in {weeks:.1f} "
              f"route-weeks = {false / weeks if weeks else float('nan'):.2f} per route-week "
              f"(target ≤ 1)")
        for i, alpha in enumerate(FAIR_ALPHAS):
            print(_fair_line([(d, f[i]) for d, f in exp], alpha))
    print("fresh install (3 h of history, tokens_out ×8 since 20 min ago):")
    print("\n".join(fresh_lines))

if __name__ == "__main__":
    main()
