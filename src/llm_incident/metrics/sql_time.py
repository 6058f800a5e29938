"""Whole epoch seconds of a timestamp column in SQL, compiled per dialect, and the index of
equal-width buckets built on them (charts and sparklines grouped in one query).

PostgreSQL: `floor(date_part('epoch', ts))` (a double, not `EXTRACT`'s numeric); SQLite:
`unixepoch` (3.38+, half the cost of `strftime('%s', …)`, which older versions use) of the stored
text cut to whole seconds (SQLite itself reads a fraction to the millisecond, so 59.9999 s would
count as the next second). Both floor a timestamp with a fraction to its second.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


# inline, not bound: compiled anew each time, a bound value would differ between a SELECT's
# column and its GROUP BY, which PostgreSQL then refuses
_EPOCH, _SECONDS = literal_column("'epoch'"), literal_column("'%s'")


class epoch_seconds(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """`epoch_seconds(column)`: the column's UTC timestamp as whole seconds since 1970."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "postgresql")
def _postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(cast(func.floor(func.date_part(_EPOCH, column)), BigInteger), **kw)


@compiles(epoch_seconds)
def _sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    column = func.substr(column, 1, 19)  # whole seconds: SQLite rounds a fraction to 1 ms
    if sqlite3.sqlite_version_info >= (3, 38, 0):
        return compiler.process(func.unixepoch(column), **kw)
    return compiler.process(cast(func.strftime(_SECONDS, column), Integer), **kw)


def bucket_index(column: Any, origin: int, width: int) -> ColumnElement[int]:
    """The `width`-second bucket after `origin` (epoch seconds) that holds `column` (0 the first;
    negative before `origin`)."""
    return cast(func.floor((epoch_seconds(column) - origin) / float(width)), Integer)
