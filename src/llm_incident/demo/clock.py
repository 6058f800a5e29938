"""The demo's time: it starts now and runs `speed` times as fast as the wall clock, so a tour
of alerts, a mitigation check and expiries takes minutes instead of an hour."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

MAX_SPEED = 120


class DemoClock:
    """A callable clock: `clock()` is `start` plus the wall time since it was made × `speed`."""

    def __init__(self, start: datetime, speed: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between 1 and {MAX_SPEED}")
        self.start, self.speed, self._monotonic = start, float(speed), monotonic
        self._t0 = monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)

    def real_seconds(self, demo_seconds: float) -> float:
        """How long `demo_seconds` of demo time last on the wall clock."""
        return demo_seconds / self.speed
