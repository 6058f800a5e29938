"""Exact event times as microseconds since the epoch (numpy int64), both backends' forms."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
_SQLITE_TS = len("2026-11-26 08:00:00.000000")


def micros(moment: datetime) -> int:
    """`moment` (naive = UTC) as whole microseconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // MICROSECOND


def moment(us: int) -> datetime:
    """The aware UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=int(us))


def sqlite_times(text: str, n: int) -> np.ndarray:
    """µs since the epoch from `n` newline-joined stored time-stamps: in numpy when all have the
    form SQLAlchemy stores (`YYYY-MM-DD HH:MM:SS.ffffff`), else one by one."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if len(text) != n * (_SQLITE_TS + 1) - 1:
        return np.array([micros(datetime.fromisoformat(s)) for s in text.split("\n")],
                        dtype=np.int64)
    raw = np.frombuffer((text + "\n").encode("ascii"), dtype=np.uint8)
    digits = raw.reshape(n, _SQLITE_TS + 1).astype(np.int64) - ord("0")

    def number(first: int, stop: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        for i in range(first, stop):
            out = out * 10 + digits[:, i]
        return out
    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    # days from the civil date (proleptic Gregorian), as in H. Hinnant's algorithm
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + number(11, 13) * 3600 + number(14, 16) * 60 + number(17, 19)
    return seconds * 1_000_000 + number(20, 26)
