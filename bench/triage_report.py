"""Time of the whole triage of one route (6 h × 200 calls/min), and where it goes.

Loads one generated token explosion at 200 calls/min (tests/triage_scenarios.py, ~72,000 calls over
6 h, its change log) and a quiet second route, then times `triage.report.triage` (median of
--repeat runs) with its parts — the shift detector, the one read of the calls around the onset
(`read_frame_for`), blast radius, attribution, causes, model and
provider health — and, in the same process, the baseline: `metrics.stats.stats_for` over the same
6 h (one metrics question). Target (issue #15): the triage in <= 300 ms.

    python bench/triage_report.py [--backend sqlite|postgres|both] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.* and tests.*
from bench.backends import load_average, load_sqlite, postgres_db  # noqa: E402
from bench.triage import PG_DEFAULT, Loaded  # noqa: E402
from llm_incident.metrics.stats import stats_for  # noqa: E402
from llm_incident.triage import report  # noqa: E402
from tests.triage_scenarios import HISTORY, NOW, route_name  # noqa: E402

TARGET_MS = 300.0
CASES = [("token_explosion", 200, 0), ("control", 30, 0)]
PARTS = ("detect_route", "read_frame_for", "blast_radius", "attribute", "likely_causes",
         "alternatives", "stats_for")


def _instrumented(spent: dict[str, float]) -> None:
    """Wrap the parts `report.triage` calls so each run adds its time per part to `spent`."""
    for name in PARTS:
        original = getattr(report, name)

        def timed(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] += (time.perf_counter() - started) * 1000

        setattr(report, name, timed)


def run(db, label: str, repeat: int) -> bool:
    route = route_name(*CASES[0])
    spent: dict[str, float] = defaultdict(float)
    samples, base = [], []
    with db.read() as session:
        calls = stats_for(session, route, NOW - HISTORY, NOW).calls
        report.triage(session, route, now=NOW, incident_class="cost")  # warm up
        _instrumented(spent)
        for _ in range(repeat):
            started = time.perf_counter()
            found = report.triage(session, route, now=NOW, incident_class="cost")
            samples.append((time.perf_counter() - started) * 1000)
        for _ in range(repeat):
            started = time.perf_counter()
            stats_for(session, route, NOW - HISTORY, NOW)
            base.append((time.perf_counter() - started) * 1000)
    ms, base_ms = statistics.median(samples), statistics.median(base)
    parts = ", ".join(f"{name} {spent[name] / repeat:.0f}" for name in PARTS)
    ok = ms <= TARGET_MS
    print(f"{label}: triage of one route, 6 h ({calls:,} calls): {ms:.0f} ms median of {repeat} "
          f"(mean per part, ms: {parts}) | baseline stats_for over the same 6 h {base_ms:.0f} ms"
          f" | ratio {ms / base_ms:.2f}x | target <= {TARGET_MS:g} ms: "
          f"{'met' if ok else 'NOT met'}")
    print(f"  found: onset {found.onset:%H:%M}, {found.attributions[0].label}, cause "
          f"{found.causes[0].ref if found.causes else None}, "
          f"{[s.command or s.kind for s in found.suggestions]}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(load_average())
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        loaded = Loaded(CASES)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="llm-incident-bench-") as tmp:
                db = load_sqlite(Path(tmp) / "bench.db", loaded.rows(), loaded.prepare)
                try:
                    run(db, "SQLite", args.repeat)
                finally:
                    db.dispose()
        else:
            url = os.environ.get("LLM_INCIDENT_BENCH_PG_URL", PG_DEFAULT)
            with postgres_db(url, loaded.rows(), loaded.prepare) as db:
                run(db, "PostgreSQL", args.repeat)
    print(load_average())


if __name__ == "__main__":
    main()
