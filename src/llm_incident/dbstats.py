"""What `llm-incident db stats` shows: rows, size on disk and the oldest row of each table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, func, select, text

from llm_incident.db import Database
from llm_incident.tables import metadata

# The column that dates a table's rows, first found wins.
_AGE_COLUMNS = ("ts", "minute", "created_at", "at", "changed_at", "closed_at", "received_at")


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    bytes: int | None  # table and its indexes; None when the backend cannot tell
    oldest: datetime | None


def _age_column(table: Table):
    for name in _AGE_COLUMNS:
        if name in table.c:
            return table.c[name]
    return None


def _sizes(db: Database) -> dict[str, int]:
    """Bytes per table, indexes included."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            try:
                rows = conn.execute(text(
                    "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s "
                    "JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name")).all()
            except Exception:  # noqa: BLE001 - SQLite built without dbstat
                return {}
        else:
            rows = conn.execute(text(
                "SELECT c.relname, CASE WHEN c.relkind = 'p' THEN (SELECT sum("
                "pg_total_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t) "
                "ELSE pg_total_relation_size(c.oid) END FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                "AND NOT c.relispartition")).all()
    return {name: int(size or 0) for name, size in rows}


def table_stats(db: Database) -> list[TableStats]:
    """Every table the service defines, largest first."""
    sizes = _sizes(db)
    out = []
    with db.read() as session:
        for table in metadata.sorted_tables:
            age = _age_column(table)
            columns = [func.count()] + ([func.min(age)] if age is not None else [])
            row = session.execute(select(*columns).select_from(table)).one()
            out.append(TableStats(table.name, row[0], sizes.get(table.name),
                                  row[1] if age is not None else None))
    return sorted(out, key=lambda t: (-(t.bytes or 0), -t.rows, t.name))


def database_bytes(db: Database) -> tuple[int, int | None]:
    """The whole database's size on disk, and (SQLite) the part on free pages that new rows reuse."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar()
            return int(pages) * int(size), int(free) * int(size)
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar()), None


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
