"""Delivery delay after a crash: `kill -9` of `llm-incident serve` during the postmortem post or
upload, restart on the same database, time until the new process delivers again.

Each run (tests/outbox_crash.py, the scenario of tests/e2e/test_outbox_crash.py): a real server
with Slack on against the local fake Slack Web API opens an incident, kills a route and closes
it while Slack holds the summary post (or the first file upload): Slack did it, the answer never
comes. The server is killed once the held row's lease was extended by its heartbeat (the worst
moment), a new one starts at once on the same database, and the delay is timed from its spawn
to its first outbox call to Slack (the look-up of the held message, then the next posts).
Target: <= 5 s. Duplicates (summary posted twice, a file uploaded twice) are counted: target 0.

Baseline, in the same run: the same crash with nothing in flight (Slack answered 503 to the
summary post, which waits for its retry), i.e. the restart itself; the ratio says what the lease
adds. `crash_delay_series` is importable (bench/faults.py).

    python bench/faults_outbox.py [--runs 3] [--postgres [ADMIN_URL]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.outbox_crash import CrashRun, crash_run  # noqa: E402
from tests import support  # noqa: E402
from tests.support import database_for  # noqa: E402

TARGET_SECONDS = 5.0
MODES = (("summary", True), ("upload", True), ("nothing", False))


def one_run(backend: str, held: str, after_beat: bool) -> CrashRun:
    with tempfile.TemporaryDirectory() as tmp, database_for(backend, Path(tmp)) as db, \
            FakeSlack() as slack:
        return crash_run(Path(tmp), db, slack, held=held, after_beat=after_beat)


def crash_delay_series(runs: int = 3, backend: str = "sqlite") -> dict[str, Any]:
    """Runs per mode; the worst crash delay (spawn → first delivery), the baseline, duplicates."""
    results: dict[str, list[CrashRun]] = {held: [] for held, _ in MODES}
    for _ in range(runs):
        for held, after_beat in MODES:
            results[held].append(one_run(backend, held, after_beat))
    crashed = results["summary"] + results["upload"]
    baseline = statistics.median(r.from_spawn for r in results["nothing"])
    worst = max(r.from_spawn for r in crashed)
    duplicates = sum((r.summary_posts - 1) + sum(n - 1 for n in r.uploads.values())
                     for r in crashed + results["nothing"])
    return {"backend": backend, "results": results, "worst": worst, "baseline": baseline,
            "ratio": worst / baseline if baseline else float("inf"), "duplicates": duplicates}


def report(series: dict[str, Any]) -> None:
    print(f"\n{series['backend']}: delivery delay after a crash (new process spawned → its first "
          "outbox call to Slack)")
    print(f"  {'held when killed':<18} {'runs':>4} {'p50 s':>7} {'max s':>7} "
          f"{'startup p50':>12} {'after /healthz max':>19} {'next post max':>14}")
    for held, runs in series["results"].items():
        spawn = [r.from_spawn for r in runs]
        print(f"  {held:<18} {len(runs):>4} {statistics.median(spawn):>7.2f} {max(spawn):>7.2f} "
              f"{statistics.median(r.startup for r in runs):>12.2f} "
              f"{max(r.from_ready for r in runs):>19.2f} "
              f"{max(r.to_next_post for r in runs):>14.2f}")
    ok = series["worst"] <= TARGET_SECONDS and series["duplicates"] == 0
    print(f"  worst crash delay {series['worst']:.2f} s (target <= {TARGET_SECONDS:.0f} s), "
          f"baseline (nothing in flight) {series['baseline']:.2f} s, ratio "
          f"{series['ratio']:.2f}x; duplicates {series['duplicates']} (target 0) "
          f"-> {'OK' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    parser.add_argument("--postgres", nargs="?",
                        const="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="also on PostgreSQL (admin URL)")
    args = parser.parse_args()
    report(crash_delay_series(args.runs, "sqlite"))
    if args.postgres:
        support.PG_ADMIN_URL = args.postgres
        report(crash_delay_series(args.runs, "postgres"))


if __name__ == "__main__":
    main()
