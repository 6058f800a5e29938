"""Where the benches run: generated event rows loaded into a temporary SQLite file and, when
LLM_INCIDENT_BENCH_PG_URL is set, into a throwaway PostgreSQL database on that server.

Rows are tuples in COLUMNS order (ts and received_at as aware datetimes, metadata as JSON text).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llm_incident.db import Database, normalize_url
from llm_incident.events.partitions import ensure_partitions
from llm_incident.migrate import upgrade

COLUMNS = ("event_id, ts, received_at, route, env, model, provider, region, customer_tier, "
           "tokens_in, tokens_out, duration_ms, status, error_code, contains_banned, cost_usd, "
           "priced, prompt_id, prompt_version, attempt, metadata")
Prepare = Callable[[Database], None]  # after the load, before timing (e.g. fill the route registry)


def sqlite_ts(value: datetime) -> str:
    """The stored form of a UTC timestamp on SQLite (what the UTCDateTime column writes)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: Path, rows: Iterable[tuple], prepare: Prepare | None = None) -> Database:
    """Migrate a fresh file, bulk-insert with executemany (indexes rebuilt after), return it."""
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
    stored = ((r[0], sqlite_ts(r[1]), sqlite_ts(r[2]), *r[3:]) for r in rows)
    con.executemany(f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * 21)})", stored)
    for _, sql in indexes:
        con.execute(sql)
    con.execute("COMMIT")
    con.close()
    db = Database(f"sqlite:///{path}")
    if prepare is not None:
        prepare(db)
    return db


@contextmanager
def postgres_db(admin_url: str, rows: Iterable[tuple], prepare: Prepare | None = None,
                days: Iterable[date] = ()) -> Iterator[Database]:
    """A fresh database on the server at `admin_url`, migrated (events partitioned by day, with
    partitions for `days` as the scheduler would have made them; other rows go to the default
    partition), loaded with COPY, analyzed; dropped afterwards."""
    name = f"llm_incident_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(
        hide_password=False)
    db = Database(url)
    try:
        upgrade(db)
        with db.write() as session:
            ensure_partitions(session.connection(), days)
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cur, cur.copy(f"COPY events ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        if prepare is not None:
            prepare(db)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_average() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def on_each_backend(rows: Callable[[], Iterable[tuple]], run: Callable[[Database, str], bool], *,
                    size: str, prepare: Prepare | None = None,
                    days: Iterable[date] = (), sqlite_too: bool = True) -> bool:
    """Load `rows()` into SQLite (unless not `sqlite_too`) and PostgreSQL (when configured),
    `run(db, label)` on each; True when every run met its target. `size` names what was
    loaded, e.g. "1,000,000 events"."""
    print(load_average())
    ok = True
    if sqlite_too:
        with tempfile.TemporaryDirectory(prefix="llm-incident-bench-") as tmp:
            started = time.perf_counter()
            db = load_sqlite(Path(tmp) / "bench.db", rows(), prepare)
            print(f"SQLite: {size} loaded in {time.perf_counter() - started:.1f} s")
            try:
                ok = run(db, f"SQLite {sqlite3.sqlite_version}")
            finally:
                db.dispose()
    pg_url = os.environ.get("LLM_INCIDENT_BENCH_PG_URL")
    if pg_url:
        started = time.perf_counter()
        with postgres_db(pg_url, rows(), prepare, days) as pg:
            print(f"\nPostgreSQL: {size} loaded in {time.perf_counter() - started:.1f} s")
            ok &= run(pg, "PostgreSQL")
    else:
        print("\n(PostgreSQL skipped: set LLM_INCIDENT_BENCH_PG_URL to run it)")
    print("\n" + load_average())
    return ok
