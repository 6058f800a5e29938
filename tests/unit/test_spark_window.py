"""The overview's sparkline windows: whole minutes, or whole hours when a bucket is an hour or more
(so the hour rollups answer the 30 d buckets alone)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llm_incident.dashboard.ranges import RANGES, SPARK_BUCKETS

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=timezone.utc)


def test_spark_windows_end_after_now_on_a_whole_minute_or_hour():
    ends = {name: r.spark_window(NOW).end for name, r in RANGES.items()}
    minute, hour = NOW.replace(second=0) + timedelta(minutes=1), NOW.replace(minute=0, second=0) + timedelta(hours=1)
    assert ends == {"1h": minute, "6h": minute, "24h": minute, "7d": hour, "30d": hour}
    month = RANGES["30d"].spark_window(NOW)
    step = month.span / SPARK_BUCKETS
    assert month.span == timedelta(days=30) and step == timedelta(days=1)
    assert all((month.start + i * step).minute == 0 for i in range(SPARK_BUCKETS + 1))
    on_the_hour = NOW.replace(minute=0, second=0)
    assert RANGES["30d"].spark_window(on_the_hour).end == on_the_hour
    assert RANGES["1h"].spark_window(on_the_hour).end == on_the_hour
