"""Nearest-rank percentiles, computed identically on SQLite, PostgreSQL and in Python.

Definition: among the `n` non-NULL values of a column, sorted ascending, the p-th percentile is the
value at 1-based rank `ceil(p / 100 * n)` (at least 1), with `p / 100 * n` evaluated in IEEE double
precision — exactly what PostgreSQL's `percentile_disc(p / 100)` does. It is always a value that
occurred (no interpolation); NULLs are ignored; no values → None.

- PostgreSQL: `percentile_disc(p / 100) WITHIN GROUP (ORDER BY column)` (see `pg_percentile`;
  `pg_percentiles` takes an array of fractions and sorts once for all of them).
- SQLite (no percentile function): `sqlite_percentiles` reads only as much of the sorted order as
  the requested ranks need. When every rank lies in the top (or bottom) quarter it asks for
  `ORDER BY column DESC LIMIT depth` — SQLite keeps a bounded sorter, far cheaper than a full
  sort — and picks the ranks from those rows; otherwise (a median) it reads the column's values
  off the covering index unsorted and sorts them in Python, which measured faster than SQLite's
  sorter (see bench/metrics.py); past `PYTHON_SORT_LIMIT` values it falls back to
  `ORDER BY column LIMIT 1 OFFSET rank - 1` so memory stays bounded.
- In Python (`select_ranks`, used by `metrics.stats` on values it read in one pass): the values
  at a few ranks without sorting them all — a sorted systematic sample brackets each rank, a
  list comprehension keeps the values inside the bracket (another counts those below it) and only
  those are sorted; if a rank falls outside its bracket (an unlucky sample) everything is sorted.
  Exact either way; about 4x faster than sorting 40,000 values. Lists up to `SORT_BELOW` values
  per rank asked are simply sorted (faster there: 1,600 values, ranks 50/95/99: 0.13 vs 0.22 ms).
- `reference_percentile` is the plain-Python definition the tests hold both backends to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Float, Select, func, literal, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

# Ranks within this fraction of either end of the sorted order are read with a bounded sort.
BOUNDED_SORT_FRACTION = 0.25
# Up to this many values are sorted in Python; beyond it SQLite sorts (bounded memory).
PYTHON_SORT_LIMIT = 500_000
# select_ranks: lists up to this long per rank asked are simply sorted; longer ones are sampled
# every SAMPLE_STEP-th value and each rank is bracketed SAMPLE_SPREAD standard errors either side.
SORT_BELOW = 1024
SAMPLE_STEP = 16
SAMPLE_SPREAD = 4.0
# A bracket ending within this fraction of the sample's either end is left open on that side.
ONE_SIDED_EDGE = 0.1


def nearest_rank(p: float, n: int) -> int:
    """The 1-based rank of the p-th percentile among `n` values: `max(1, ceil(p / 100 * n))`."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    if n < 1:
        raise ValueError("nearest rank needs at least one value")
    return min(n, max(1, math.ceil(p / 100 * n)))


def reference_percentile(values: Iterable[Any], p: float) -> Any:
    """The p-th nearest-rank percentile of `values` (None ignored); None when there are none."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return ordered[nearest_rank(p, len(ordered)) - 1]


def pg_percentile(column: ColumnElement[Any], p: float) -> ColumnElement[Any]:
    """PostgreSQL aggregate for the p-th nearest-rank percentile of `column` (NULLs ignored)."""
    return func.percentile_disc(literal(p / 100, Float())).within_group(column)


def pg_percentiles(column: ColumnElement[Any], ps: Sequence[float]) -> ColumnElement[Any]:
    """One PostgreSQL aggregate for several percentiles of `column` (an array; one sort)."""
    return func.percentile_disc(array([literal(p / 100, Float()) for p in ps])).within_group(column)


def pick(ordered: Sequence[Any], ps: Sequence[float]) -> dict[float, Any]:
    """Percentiles `ps` from values already sorted ascending (no NULLs)."""
    if not ordered:
        return {p: None for p in ps}
    return {p: ordered[nearest_rank(p, len(ordered)) - 1] for p in ps}


def select_ranks(values: list[Any], ranks: Sequence[int]) -> list[Any]:
    """The values at the 1-based `ranks` of `values` (no NULLs) in ascending order; `values` is
    left as it was. Sorts only the values near the ranks (see the module docstring)."""
    n = len(values)
    if n <= SORT_BELOW * len(set(ranks)) or not ranks:
        return _from_sorted(sorted(values), ranks)
    sample = sorted(values[::SAMPLE_STEP])
    found: dict[int, Any] = {}
    for lo, hi, inside_ranks in _brackets(sample, ranks, n):
        if lo is None and hi is None:
            return _from_sorted(sorted(values), ranks)
        if lo is None:
            inside, below = [v for v in values if v <= hi], 0
        elif hi is None:
            inside = [v for v in values if v >= lo]
            below = n - len(inside)
        else:
            inside = [v for v in values if lo <= v <= hi]
            below = len([v for v in values if v < lo])
        if not all(below < rank <= below + len(inside) for rank in inside_ranks):
            return _from_sorted(sorted(values), ranks)  # the sample misled us: sort everything
        inside.sort()
        found.update((rank, inside[rank - below - 1]) for rank in inside_ranks)
    return [found[rank] for rank in ranks]


def _from_sorted(ordered: list[Any], ranks: Sequence[int]) -> list[Any]:
    return [ordered[rank - 1] for rank in ranks]


def _brackets(
    sample: list[Any], ranks: Sequence[int], n: int
) -> list[tuple[Any, Any, list[int]]]:
    """(lo, hi, ranks) value brackets around each rank's estimate from the sorted `sample`,
    overlapping ones merged; None = unbounded on that side."""
    m = len(sample)
    edge = m * ONE_SIDED_EDGE
    spans: list[tuple[int, int, int]] = []
    for rank in sorted(set(ranks)):
        q = rank / n
        at, spread = q * m, SAMPLE_SPREAD * math.sqrt(m * q * (1 - q)) + 2
        first, last = math.floor(at - spread), math.ceil(at + spread)
        # Near either end an open bracket is cheaper: one pass, and few extra values to sort.
        spans.append((-1 if first < edge else first, m if last >= m - edge else last, rank))
    merged: list[tuple[int, int, list[int]]] = []
    for first, last, rank in spans:
        if merged and first <= merged[-1][1]:
            merged[-1] = (min(first, merged[-1][0]), max(last, merged[-1][1]),
                          [*merged[-1][2], rank])
        else:
            merged.append((first, last, [rank]))
    return [(sample[first] if first >= 0 else None, sample[last] if last < m else None, group)
            for first, last, group in merged]


def raw_rows(session: Session, stmt: Select[Any],
             params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The DBAPI's own tuples for `stmt`, skipping SQLAlchemy's per-row work (about half the
    cost on a large window). Only for columns that need no result conversion (numbers, text)."""
    result = session.connection().execute(stmt, params)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def sqlite_percentiles(
    session: Session,
    column: ColumnElement[Any],
    ps: Sequence[float],
    conditions: Sequence[ColumnElement[bool]],
    n: int,
) -> dict[float, Any]:
    """Percentiles `ps` of `column` over rows matching `conditions`; `n` = its non-NULL count.

    `n` must come from the same read transaction (SQLite reads see one snapshot).
    """
    if n <= 0 or not ps:
        return {p: None for p in ps}
    ranks = {p: nearest_rank(p, n) for p in ps}
    base = select(column).where(*conditions, column.is_not(None))
    bounded = int(n * BOUNDED_SORT_FRACTION)
    top_depth = n - min(ranks.values()) + 1
    if top_depth <= bounded:
        top = [v for (v,) in raw_rows(session, base.order_by(column.desc()).limit(top_depth))]
        return {p: top[n - rank] for p, rank in ranks.items()}
    bottom_depth = max(ranks.values())
    if bottom_depth <= bounded:
        bottom = [v for (v,) in raw_rows(session, base.order_by(column.asc()).limit(bottom_depth))]
        return {p: bottom[rank - 1] for p, rank in ranks.items()}
    if n <= PYTHON_SORT_LIMIT:
        values = [v for (v,) in raw_rows(session, base)]
        values.sort()
        return pick(values, ps)
    # Very large windows: let SQLite sort (it spills to disk) rather than hold them in memory.
    ordered = base.order_by(column.asc()).limit(1)
    return {p: session.execute(ordered.offset(rank - 1)).scalar_one() for p, rank in ranks.items()}


def percentiles(
    session: Session,
    column: ColumnElement[Any],
    ps: Sequence[float],
    conditions: Sequence[ColumnElement[bool]],
) -> dict[float, Any]:
    """Percentiles `ps` of `column` over the rows matching `conditions`, on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(select(*(pg_percentile(column, p) for p in ps)).where(*conditions))
        return dict(zip(ps, row.one(), strict=True))
    n = session.execute(select(func.count(column)).where(*conditions)).scalar_one()
    return sqlite_percentiles(session, column, ps, conditions, n)
