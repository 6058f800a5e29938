"""Postmortem compile time: 1,000,000 events in the store, an incident with 10,000 attached events.

Loads the events of bench/metrics.py (same generator: 20 routes over 7 days, Zipf-like traffic)
into a temporary SQLite file, then opens incident #1 on the two busiest routes for two hours
(baseline: the two hours before), with the control changes, status updates and change-log
entries a real incident has, and bulk-inserts 10,000 evidence rows (bad / good / unlabelled,
some with notes) plus an evidence timeline entry per 100 of them. Then times, best of --repeat
runs (median alongside), each in a fresh read session:

- compile + render: `compile_postmortem` + `render_markdown` — target <= 2 s;
- charts: `route_charts` (one PNG per impacted route), reported separately.

With LLM_INCIDENT_BENCH_PG_URL set (e.g. postgresql://postgres@127.0.0.1:5432/postgres) it does the
same on PostgreSQL, in a database it creates on that server and drops afterwards.

    python bench/postmortem.py [--events 1000000] [--evidence 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for bench.metrics
from bench.backends import on_each_backend  # noqa: E402
from bench.metrics import NOW, ROUTES, generate  # noqa: E402
from llm_incident.changes import ChangeIn, ChangeKind, record_change  # noqa: E402
from llm_incident.controls.service import change_controls  # noqa: E402
from llm_incident.db import Database  # noqa: E402
from llm_incident.evidence.models import Evidence  # noqa: E402
from llm_incident.incidents.models import TimelineEntry  # noqa: E402
from llm_incident.incidents.postmortem import (  # noqa: E402
    compile_postmortem,
    render_markdown,
    route_charts,
)
from llm_incident.incidents.service import (  # noqa: E402
    StartRequest,
    close_incident,
    get_incident,
    post_status,
    start_incident,
)

TARGET_S = 2.0
START = NOW - timedelta(hours=3)
CLOSE = START + timedelta(hours=2)
INCIDENT_ROUTES = tuple(ROUTES[:2])


def evidence_ids(n_events: int, count: int) -> list[str]:
    """`count` distinct event ids, spread over the store (attached evidence need not be recent)."""
    step = max(1, n_events // count)
    return [f"bench-{i}" for i in range(0, step * count, step)][:count]


def seed_incident(db: Database, n_events: int, n_evidence: int) -> None:
    with db.write() as session:
        for minutes, route, kind, text in ((-40, ROUTES[0], ChangeKind.prompt, "prompt v42"),
                                           (-300, ROUTES[1], ChangeKind.deploy, "deploy 2.3.1"),
                                           (45, ROUTES[0], ChangeKind.prompt, "revert to v41")):
            ts = START + timedelta(minutes=minutes)
            record_change(session, ChangeIn(route=route, kind=kind, description=text, ref=text,
                                            ts=ts), now=ts)
        incident, _ = start_incident(session, StartRequest(
            commander="U1", symptom="tokens exploding", routes=INCIDENT_ROUTES), now=START)
        for minutes, route, changes in ((10, ROUTES[0], {"max_tokens": 800}),
                                        (20, ROUTES[1], {"enabled": False}),
                                        (50, ROUTES[1], {"enabled": True}),
                                        (70, ROUTES[0], {"retry_cap": 1})):
            change_controls(session, route, "prod", changes, actor="U2", incident=1,
                            now=START + timedelta(minutes=minutes))
        for minutes in (5, 30, 60, 90, 110):
            post_status(session, incident, actor="U1", text=f"update at +{minutes} min",
                        now=START + timedelta(minutes=minutes))
        incident_id = incident.id
    labels = ("bad", "bad", "good", None, "bad")
    rows, entries = [], []
    for i, event_id in enumerate(evidence_ids(n_events, n_evidence)):
        at = START + timedelta(minutes=15, milliseconds=200 * i)
        rows.append({"incident_id": incident_id, "event_id": event_id, "label": labels[i % 5],
                     "note": f"note {i}" if i % 10 == 0 else None, "labelled_by": "U3",
                     "created_at": at, "updated_at": at})
        if i % 100 == 0:
            entries.append({"incident_id": incident_id, "ts": at, "actor": "U3",
                            "kind": "evidence", "text": f"attached 100 events from {event_id}"})
    with db.write() as session:
        session.execute(insert(Evidence.__table__), rows)
        session.execute(insert(TimelineEntry.__table__), entries)
    with db.write() as session:
        close_incident(session, get_incident(session, 1), actor="U1", summary="clamped, reverted",
                       now=CLOSE)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(best, median) seconds of `repeat` runs after a warm-up, and the last result."""
    result = fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return min(samples), statistics.median(samples), result


def bench(db: Database, label: str, n_events: int, n_evidence: int, repeat: int) -> bool:
    started = time.perf_counter()
    seed_incident(db, n_events, n_evidence)
    print(f"\n{label}: incident seeded in {time.perf_counter() - started:.1f} s")
    now = CLOSE + timedelta(hours=1)

    def compile_and_render() -> str:
        with db.read() as session:
            return render_markdown(compile_postmortem(session, 1, now=now))

    def charts() -> dict[str, bytes]:
        with db.read() as session:
            pm = compile_postmortem(session, 1, now=now)
            return route_charts(session, pm)

    def compile_only() -> object:
        with db.read() as session:
            return compile_postmortem(session, 1, now=now)

    best, median, text = timed(compile_and_render, repeat)
    c_best, c_median, pm = timed(compile_only, repeat)
    h_best, h_median, pngs = timed(charts, repeat)
    assert isinstance(text, str) and f"{n_evidence:,} event(s) attached" in text
    calls = sum(m.during.calls + (m.after.calls if m.after else 0) + m.baseline.calls
                for m in pm.metrics)  # type: ignore[attr-defined]
    met = best <= TARGET_S
    print(f"  compile + render: {best * 1000:.0f} ms (median {median * 1000:.0f} ms), "
          f"target <= {TARGET_S:.0f} s: {'met' if met else 'NOT met'}")
    print(f"    of which compile: {c_best * 1000:.0f} ms (median {c_median * 1000:.0f} ms); "
          f"{len(pm.metrics)} routes, {calls:,} events in their windows, "  # type: ignore[attr-defined]
          f"{n_evidence:,} evidence rows, Markdown {len(text):,} bytes")
    print(f"  charts ({len(pngs)} PNG, compile included): {h_best * 1000:.0f} ms "  # type: ignore[arg-type]
          f"(median {h_median * 1000:.0f} ms), "
          f"{sum(len(p) for p in pngs.values()):,} bytes")  # type: ignore[union-attr]
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--evidence", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.evidence > args.events:
        parser.error("--evidence cannot exceed --events")

    ok = on_each_backend(
        lambda: generate(args.events, args.seed),
        lambda db, label: bench(db, label, args.events, args.evidence, args.repeat),
        size=f"{args.events:,} events")
    print("target met" if ok else "target NOT met")


if __name__ == "__main__":
    main()
