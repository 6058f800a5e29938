"""Triage on generated scenarios with known truth: onset, "no shift", attribution, cause, time.

Generates the scenarios of tests/triage_scenarios.py — token explosion (prompt v42), latency spike
on one model, 429 storm in one region, quality regression on one customer tier, cost jump from a
model-mix change, traffic surge with unchanged behaviour, gradual drift, no-change control — at
5, 30 and 200 calls/min, several seeds each (one route per case, ~6 h of history, the cause and
decoy change-log rows), loads them all into one database per backend (SQLite file, and/or a
throwaway PostgreSQL database), and for each case runs `triage.shifts.detect_route` at `now`:

- step cases: onset (`RouteShifts.onset` of the class's stats) within ±2 min of the truth;
- controls (no change; traffic surge): "no shift" for every behaviour stat (a surge may move
  calls_per_min only);
- gradual drift: reported as a drift (not a step) on p95 tokens_out;
- with `llm_incident.triage.report` present, for the first --report-seeds seeds of each step
  kind and rate (its full report takes seconds): the injected dimension value ranked first by the
  attribution, and the cause's change-log row ranked first (cases that have one).

Then times `detect_route` for one route with 6 h × 200 calls/min (median of --repeat runs) and the
baseline in the same process: the plain `metrics.stats.stats_for` over the same 6 h (what one
metrics question costs). Targets: onset ±2 min >= 95 % of step cases; no shift >= 98 % of
controls; dimension / cause first >= 95 %; detect_route <= 300 ms.

    python bench/triage.py [--backend sqlite|postgres|both] [--seeds 12] [--seeds-200 2]
                           [--report-seeds 2] [--repeat 7]

PostgreSQL: LLM_INCIDENT_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.* and tests.*
from bench.backends import load_average, load_sqlite, postgres_db  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.metrics.stats import stats_for  # noqa: E402
from llm_incident.triage.shifts import CLASS_STATS, RouteShifts, detect_route  # noqa: E402
from tests.triage_scenarios import (  # noqa: E402
    CONTROL_KINDS, HISTORY, KINDS, NOW, STEP_KINDS, Scenario, generate, insert_changes,
    route_name)

try:  # the attribution / cause half of the triage (another module; optional here)
    from llm_incident.triage import report as triage_report
except ImportError:  # pragma: no cover - before it exists
    triage_report = None

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
TOLERANCE = timedelta(minutes=2)
TARGETS = {"onset": 95.0, "no_shift": 98.0, "dimension": 95.0, "cause": 95.0, "ms": 300.0}
TIMED = ("token_explosion", 200, 0)  # the route timed: 6 h × 200 calls/min


def cases(seeds: int, seeds_200: int) -> list[tuple[str, int, int]]:
    return [(kind, rate, seed) for kind in KINDS for rate in (5, 30, 200)
            for seed in range(seeds_200 if rate == 200 else seeds)]


def _rows(scenario: Scenario) -> Iterator[tuple]:
    for e in scenario.events:
        yield (e["event_id"], e["ts"], e["received_at"], e["route"], e["env"], e["model"],
               e["provider"], e["region"], e["customer_tier"], e["tokens_in"], e["tokens_out"],
               e["duration_ms"], e["status"], e["error_code"], e["contains_banned"],
               e["cost_usd"], e["priced"], e["prompt_id"], e["prompt_version"], e["attempt"],
               "{}")  # the scenarios carry no metadata


class Loaded:
    """The scenarios of one run (events dropped once loaded) and their causes' change ids."""

    def __init__(self, keys: list[tuple[str, int, int]]) -> None:
        self.keys = keys
        self.scenarios: list[Scenario] = []
        self.cause_ids: dict[str, int | None] = {}

    def rows(self) -> Iterator[tuple]:
        self.scenarios = []
        for key in self.keys:
            scenario = generate(*key)
            yield from _rows(scenario)
            scenario.events = []
            self.scenarios.append(scenario)

    def prepare(self, db: Database) -> None:
        with db.write() as session:
            for scenario in self.scenarios:
                self.cause_ids[scenario.name] = insert_changes(session, scenario)


def _within(found, truth) -> bool:
    return found is not None and truth is not None and abs(found - truth) <= TOLERANCE


def _report_checks(session, scenario: Scenario, cause_id: int | None,
                   report_seeds: int) -> tuple[bool | None, ...]:
    """(dimension ranked first, cause ranked first) from triage.report; None = not applicable
    (or a seed past `report_seeds`: the full report takes seconds a case)."""
    if (triage_report is None or scenario.kind not in STEP_KINDS
            or 0 <= report_seeds <= scenario.seed):
        return None, None
    found = triage_report.triage(session, scenario.route, now=scenario.now,
                                 incident_class=scenario.truth.incident_class)
    dimension = None
    if scenario.truth.dimension is not None:
        top = found.attributions[0] if found.attributions else None
        field, value = scenario.truth.dimension
        dimension = top is not None and top.dimension == field and str(top.value).lstrip(
            "v") == value
    cause = None
    if cause_id is not None:
        cause = bool(found.causes) and found.causes[0].change_id == cause_id
    return dimension, cause


def evaluate(session, scenario: Scenario, cause_id: int | None,
             report_seeds: int) -> dict[str, bool | None]:
    """The checks of one case (None = not applicable to its kind)."""
    shifts: RouteShifts = detect_route(session, scenario.route, now=scenario.now,
                                       lookback=HISTORY)
    truth = scenario.truth
    result: dict[str, bool | None] = {"onset": None, "no_shift": None, "drift": None}
    if scenario.kind in STEP_KINDS:
        result["onset"] = _within(shifts.onset(CLASS_STATS[truth.incident_class]), truth.onset)
    elif scenario.kind in CONTROL_KINDS:
        result["no_shift"] = all(s.stat in truth.stats for s in shifts.moved())
    else:
        result["drift"] = shifts.shifts[truth.stats[0]].kind == "drift"
    result["dimension"], result["cause"] = _report_checks(session, scenario, cause_id,
                                                          report_seeds)
    return result


def _pct(values: list[bool | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{100 * sum(known) / len(known):5.1f} % ({sum(known)}/{len(known)})" if known else "–"


def _share(values: list[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return 100 * sum(known) / len(known) if known else None


def _timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench(db: Database, label: str, loaded: Loaded, repeat: int, report_seeds: int) -> bool:
    print(f"\n{label}: {len(loaded.scenarios)} cases")
    table: dict[tuple[str, int], list[dict]] = defaultdict(list)
    started = time.perf_counter()
    with db.read() as session:
        for scenario in loaded.scenarios:
            table[(scenario.kind, scenario.rate)].append(
                evaluate(session, scenario, loaded.cause_ids[scenario.name], report_seeds))
    print(f"  evaluated in {time.perf_counter() - started:.1f} s")
    columns = ("onset", "no_shift", "drift", "dimension", "cause")
    heads = ("onset ±2 min", "no shift", "drift as drift", "dimension first", "cause first")
    print("  " + f"{'scenario':<20}{'rate':>5}  " + "".join(f"{h:<22}" for h in heads))
    for (kind, rate), results in table.items():
        cells = "".join(f"{_pct([r[c] for r in results]):<22}" for c in columns)
        print(f"  {kind:<20}{rate:>5}  {cells}")
    every = [r for results in table.values() for r in results]
    met = True
    print("  totals:")
    for column in ("onset", "no_shift", "drift", "dimension", "cause"):
        share = _share([r[column] for r in every])
        target = TARGETS.get(column)
        verdict = "" if target is None or share is None else (
            f" target >= {target:g} %: {'met' if share >= target else 'NOT met'}")
        met &= target is None or share is None or share >= target
        print(f"    {column:<10} {_pct([r[column] for r in every])}{verdict}")
    kind, rate, seed = TIMED
    route = route_name(kind, rate, seed)
    with db.read() as session:
        calls = stats_for(session, route, NOW - HISTORY, NOW).calls
        triage_ms = _timed(lambda: detect_route(session, route, now=NOW), repeat)
        base_ms = _timed(lambda: stats_for(session, route, NOW - HISTORY, NOW), repeat)
    ok = triage_ms <= TARGETS["ms"]
    met &= ok
    print(f"  detect_route, one route, 6 h ({calls:,} calls): {triage_ms:.1f} ms median of "
          f"{repeat} | baseline stats_for over the same 6 h {base_ms:.1f} ms | ratio "
          f"{triage_ms / base_ms:.2f}x | target <= {TARGETS['ms']:g} ms: "
          f"{'met' if ok else 'NOT met'}")
    return met


@contextmanager
def _sqlite(loaded: Loaded) -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="llm-incident-bench-") as tmp:
        db = load_sqlite(Path(tmp) / "bench.db", loaded.rows(), loaded.prepare)
        try:
            yield db
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=12, help="seeds per kind at 5 and 30/min")
    parser.add_argument("--seeds-200", type=int, default=2, help="seeds per kind at 200/min")
    parser.add_argument("--report-seeds", type=int, default=2,
                        help="seeds per kind and rate also given the full triage report "
                             "(dimension / cause columns); -1 = all")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    keys = cases(args.seeds, args.seeds_200)
    print(load_average())
    print(f"{len(keys)} cases: {len(KINDS)} kinds × rates 5, 30 (×{args.seeds} seeds) and 200 "
          f"calls/min (×{args.seeds_200} seeds)"
          + ("" if triage_report else "; triage.report absent: no dimension / cause columns"))
    ok = True
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        loaded = Loaded(keys)
        started = time.perf_counter()
        if backend == "sqlite":
            context = _sqlite(loaded)
            label = "SQLite"
        else:
            url = os.environ.get("LLM_INCIDENT_BENCH_PG_URL", PG_DEFAULT)
            context = postgres_db(url, loaded.rows(), loaded.prepare)
            label = "PostgreSQL"
        with context as db:
            print(f"\n{label}: generated and loaded in {time.perf_counter() - started:.1f} s")
            ok &= bench(db, label, loaded, args.repeat, args.report_seeds)
    print("\n" + load_average())
    print("all targets met" if ok else "some targets NOT met")


if __name__ == "__main__":
    main()
