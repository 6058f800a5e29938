"""Batch ingest: validate each event, price and redact it, store new ones, count duplicates.

Poison never blocks good input: a NUL, a lone surrogate, NaN or Infinity anywhere in one event
(any field, metadata keys and values, excerpts) rejects that event, naming the field, and the
rest of the batch is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
import json
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_json
from sqlalchemy import Boolean, Float, String, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from llm_incident.bounds import SCANNED_BODY, body_is_plain, text_problem
from llm_incident.events.models import Event
from llm_incident.events.pricing import cost_usd
from llm_incident.events.redact import excerpt
from llm_incident.events.routes import note_routes
from llm_incident.events.schema import EventIn

_TABLE = Event.__table__
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass
class Rejection:
    index: int
    event_id: str | None
    errors: list[dict[str, str]]


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unpriced: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.__dict__ for r in self.rejected],
            "unpriced": self.unpriced,
        }


def _printable(text: str) -> str:
    """`text` as it can be answered in JSON: NUL and lone surrogates escaped."""
    return ascii(text)[1:-1] if text_problem(text) else text


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as one `{field, message}` per field, in a form a person can act on."""
    by_field: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = _printable(str(err["loc"][0])) if err["loc"] else "(event)"
        if not err["loc"] and err["type"] == "string_unicode":  # a key pydantic cannot even read
            loc = _printable(err["input"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (see the event fields in the README)"
        elif err["type"] == "timezone_aware":
            msg = "timestamp needs a UTC offset (RFC 3339), e.g. 2026-11-26T14:00:00Z"
        elif err["type"] == "string_unicode" or (
                err["type"] == "string_pattern_mismatch" and isinstance(err.get("input"), str)):
            msg = text_problem(err["input"]) or msg
        messages = by_field.setdefault(loc, [])
        if msg not in messages:
            messages.append(msg)
    return [{"field": f, "message": " or ".join(m)} for f, m in by_field.items()]


def to_row(event: EventIn, *, now: datetime, excerpt_max_chars: int) -> dict[str, Any]:
    """The stored form of a validated event: defaults filled, cost computed, excerpts redacted.

    The row starts as a copy of the event's fields (its keys are the columns, `received_at` and
    `priced` besides), which is cheaper than naming each of them."""
    row = dict(event.__dict__)
    ts = row["ts"] = event.ts or now
    cost = event.cost_usd
    if cost is None:
        cost = row["cost_usd"] = cost_usd(event.model, event.provider, event.tokens_in,
                                          event.tokens_out, ts)
    if event.event_id is None:
        row["event_id"] = uuid.uuid4().hex
    for name in _CODES:
        if type(row[name]) is int:
            row[name] = str(row[name])
    row["received_at"] = now
    row["priced"] = cost is not None
    row["input_excerpt"] = excerpt(event.input_excerpt, excerpt_max_chars)
    row["output_excerpt"] = excerpt(event.output_excerpt, excerpt_max_chars)
    return row


_CODES = ("error_code", "prompt_id", "prompt_version")  # arrive as 429 or "429"; stored as text


class _Wrapped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn]


_BARE = TypeAdapter(list[EventIn])
_SCANNED = {SCANNED_BODY: True}
_WRAPPED = TypeAdapter(_Wrapped)


def parse_valid_batch(body: bytes) -> list[EventIn] | None:
    """Fast path: parse and validate the whole body in pydantic-core at once.

    Returns None when the body is not an all-valid batch; the caller then takes the per-item path
    (`parse_batch_items`), which reports each problem by index.
    """
    start = body.lstrip()[:1]
    context = _SCANNED if body_is_plain(body) else None  # metadata needs no walk of its own
    try:
        if start == b"[":
            return _BARE.validate_json(body, context=context)
        if start == b"{":
            return _WRAPPED.validate_json(body, context=context).events
    except ValidationError:
        return None
    return None


def _non_finite(name: str) -> float:
    return float(name.replace("Infinity", "inf"))


def parse_batch_items(body: bytes) -> list[Any] | None:
    """The raw items of a batch (`[...]` or `{"events": [...]}`) read leniently, so that one
    event's NaN, Infinity or lone surrogate (which strict JSON refuses) rejects that event alone
    in `validate_batch`. None when the body is not such a batch: the caller answers it with the
    strict parser's 400."""
    try:
        payload = json.loads(body, parse_constant=_non_finite)
    except (ValueError, RecursionError):
        return None
    if isinstance(payload, dict) and set(payload) == {"events"}:
        payload = payload["events"]
    return payload if isinstance(payload, list) else None


def validate_batch(
    items: list[Any], *, now: datetime, excerpt_max_chars: int
) -> tuple[list[dict[str, Any]], IngestResult]:
    """Rows for the valid items (dicts, or EventIn already validated; first occurrence of an id
    wins) and the result so far."""
    result = IngestResult()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if isinstance(item, EventIn):
            event = item
        elif not isinstance(item, dict):
            err = {"field": "(event)", "message": "each event must be a JSON object"}
            result.rejected.append(Rejection(index, None, [err]))
            continue
        else:
            try:
                event = EventIn.model_validate(item)
            except ValidationError as exc:
                raw_id = item.get("event_id")
                rejection = Rejection(
                    index, _printable(raw_id) if isinstance(raw_id, str) else None,
                    validation_errors(exc))
                result.rejected.append(rejection)
                continue
        row = to_row(event, now=now, excerpt_max_chars=excerpt_max_chars)
        if row["event_id"] in seen:
            result.duplicates += 1
            continue
        seen.add(row["event_id"])
        rows.append(row)
    return rows, result


def _sqlite_datetime(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite DATETIME stores for an aware value (UTC, always 6 decimals)."""
    if value is None:
        return None
    if value.utcoffset() != _ZERO:
        value = value.astimezone(timezone.utc)
    return value.isoformat(" ", "microseconds")[:26]


_ZERO = timedelta(0)


def _sqlite_json(value: Any) -> str | None:
    """Compact JSON text for SQLite's metadata column, serialized in pydantic-core (validation
    already refused NaN, Infinity, NUL and lone surrogates, so this is strict JSON that SQLite's
    JSON functions read; any valid JSON reads back the same through SQLAlchemy)."""
    return None if value is None else to_json(value).decode()


_SQLITE_NATIVE = (Float, Boolean)  # sqlite3 stores the float / bool to_row holds as the processor would


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    positional: bool
    order: tuple[str, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def params(self, rows: list[dict[str, Any]]) -> list[Any]:
        """DB-API parameters for rows, converted column by column; a value shared by consecutive
        rows (received_at) is converted once."""
        getter = itemgetter(*self.order)
        table = [list(getter(row)) for row in rows]
        for i, proc in self.processors:
            last_raw: Any = _ZERO  # never a column value
            last = None
            for values in table:
                raw = values[i]
                if raw is not last_raw:
                    last_raw, last = raw, proc(raw)
                values[i] = last
        if self.positional:
            return [tuple(values) for values in table]
        return [dict(zip(self.order, values)) for values in table]


@lru_cache(maxsize=8)
def _insert_plan(dialect: Dialect) -> _InsertPlan:
    """The compiled `INSERT … ON CONFLICT DO NOTHING` and each column's bind processor."""
    columns = {c.name: c for c in _TABLE.columns if c.name != "id"}
    # no conflict target: on PostgreSQL events may be partitioned by day, where the unique key
    # is (event_id, ts) — a repeat with another ts is caught by the lookup in `_store_new`
    stmt = _INSERTS[dialect.name](_TABLE).on_conflict_do_nothing()
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup) if compiled.positional else tuple(columns)
    processors = []
    for i, name in enumerate(order):
        col_type = columns[name].type
        if dialect.name == "sqlite" and name == "metadata":
            proc = _sqlite_json  # JSON text as the processor sends it, a fifth of the cost
        elif dialect.name == "sqlite" and isinstance(col_type, UTCDateTime):
            proc = _sqlite_datetime  # same text as SQLAlchemy's processor, a tenth of the cost
        elif dialect.name == "sqlite" and isinstance(col_type, _SQLITE_NATIVE):
            proc = None
        else:
            proc = col_type.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            processors.append((i, proc))
    return _InsertPlan(compiled.string, compiled.positional, order, tuple(processors))


def existing_ids(session: Session, ids: list[str]) -> set[str]:
    """Which of `ids` are already stored.

    On PostgreSQL one array parameter (`event_id = ANY($1)`), not an `IN` list of 500: once
    psycopg prepares the statement, a generic plan keeps the list as 500 parameters, which a
    sequential scan compares one by one — on a partition not yet analyzed (the first minutes
    of a day's partition, a fresh install) the planner picks that scan, and each lookup of a
    25,000-row partition took 200 ms. With one array of unknown length, the planner's guess
    (10 elements) makes the index probe the cheaper plan beyond a few hundred rows."""
    found: set[str] = set()
    on_postgresql = session.connection().dialect.name == "postgresql"
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        match = (_TABLE.c.event_id == any_(bindparam("ids", chunk, type_=ARRAY(String)))
                 if on_postgresql else _TABLE.c.event_id.in_(chunk))
        found.update(session.execute(select(_TABLE.c.event_id).where(match)).scalars())
    return found


def store_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert rows in one executemany, skipping event_ids already stored; returns rows inserted.

    The statement is compiled once per dialect and values go through SQLAlchemy's own bind
    processors, so stored values are exactly what the ORM writes, without per-row ORM overhead.
    """
    if not rows:
        return 0
    conn = session.connection()
    plan = _insert_plan(conn.dialect)
    return conn.exec_driver_sql(plan.sql, plan.params(rows)).rowcount


def _store_new(session: Session, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Store the rows whose event_id is not stored yet: (those rows, how many were inserted).

    Optimistic: the whole batch goes in at once inside a savepoint; only when some ids were already
    stored (a client retry) is that undone and the batch sent again without the known ids — so a
    batch of new events costs one statement and no lookup of its ids. On PostgreSQL the ids are
    looked up first (a day-partitioned table is unique on (event_id, ts) only).
    """
    if not rows:
        return rows, 0
    if session.connection().dialect.name == "postgresql":
        # day partitions keep event_id unique only together with ts: look the ids up first
        known = existing_ids(session, [r["event_id"] for r in rows])
        rows = [r for r in rows if r["event_id"] not in known] if known else rows
        if not rows:
            return rows, 0
    savepoint = session.begin_nested()
    inserted = store_rows(session, rows)
    if inserted == len(rows):
        savepoint.commit()
        return rows, inserted
    savepoint.rollback()
    known = existing_ids(session, [r["event_id"] for r in rows])
    new_rows = [r for r in rows if r["event_id"] not in known]
    return new_rows, store_rows(session, new_rows)  # a concurrent twin may still win the race


def ingest_events(
    session: Session, items: list[Any], *, now: datetime, excerpt_max_chars: int = 2000
) -> IngestResult:
    """Validate and store a batch in the caller's transaction; invalid items never block valid ones."""
    rows, result = validate_batch(items, now=now, excerpt_max_chars=excerpt_max_chars)
    new_rows, result.accepted = _store_new(session, rows)
    note_routes(session, new_rows)
    result.duplicates += len(rows) - result.accepted
    result.unpriced = sum(1 for r in new_rows if not r["priced"])
    return result
