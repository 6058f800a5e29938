"""The time ranges a dashboard page can show, and the bucket width each is charted with.

Long ranges get coarse buckets (1 h for 7 d, 6 h for 30 d) so a chart stays at most a few hundred
points; ranges past LLM_INCIDENT_EXACT_WINDOW_MAX read them from the hour and minute rollups
(`dashboard.series`), which answer whole minutes: every edge here is on a whole minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from llm_incident.metrics.windows import Window


@dataclass(frozen=True)
class Range:
    """A named span ending now, charted in buckets of `bucket`."""

    name: str
    span: timedelta
    bucket: timedelta

    @property
    def buckets(self) -> int:
        return int(self.span / self.bucket)

    def window(self, now: datetime) -> Window:
        """The span ending at `now`, its end rounded up to a whole bucket (so buckets align)."""
        step = self.bucket.total_seconds()
        end_s = -(-now.timestamp() // step) * step
        end = datetime.fromtimestamp(end_s, tz=now.tzinfo)
        return Window(end - self.span, end)

    def spark_window(self, now: datetime) -> Window:
        """The overview's sparkline span: the range ending at `now`'s next whole minute (so its
        `SPARK_BUCKETS` buckets, whole minutes wide, start on whole minutes) — or next whole hour
        when a bucket is an hour or more (30 d: day-wide buckets on whole hours, which the hour
        rollups answer alone instead of minute rows at every bucket edge)."""
        unit = timedelta(hours=1) if self.span / SPARK_BUCKETS >= timedelta(hours=1) \
            else timedelta(minutes=1)
        step = unit.total_seconds()
        end = datetime.fromtimestamp(-(-now.timestamp() // step) * step, tz=now.tzinfo)
        return Window(end - self.span, end)

    def edges(self, now: datetime) -> list[datetime]:
        """Bucket edges from the window's start to its end (`buckets` + 1 of them)."""
        window = self.window(now)
        return [window.start + i * self.bucket for i in range(self.buckets + 1)]


RANGES = {r.name: r for r in (
    Range("1h", timedelta(hours=1), timedelta(minutes=1)),
    Range("6h", timedelta(hours=6), timedelta(minutes=5)),
    Range("24h", timedelta(hours=24), timedelta(minutes=15)),
    Range("7d", timedelta(days=7), timedelta(hours=1)),
    Range("30d", timedelta(days=30), timedelta(hours=6)),
)}
DEFAULT_RANGE = "1h"
SPARK_BUCKETS = 30  # sparkline points on the overview, whatever the range


def pick(name: str | None) -> Range:
    """The named range; the default for a missing or unknown name."""
    return RANGES.get(name or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])
