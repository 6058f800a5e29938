"""The scheduler: APScheduler 3.x interval jobs in this process, doing work only while it leads.

Jobs keep nothing in memory that matters: each computes what is due from the store at `now`
(alerts from the events and stored states, reminders from the timeline, expiries from the
controls, checks from the control audit) and claims a (job, slot) row before it posts. So the
in-memory job store loses nothing on restart, a late run still sends what is due (no misfire
grace limit; runs coalesce), and two leaders for a moment still post each thing once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from llm_incident.observability import ServiceMetrics
from llm_incident.scheduler.alert_job import run_alerts
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.control_proof import SECONDS as PROOF_SECONDS, update_control_proofs
from llm_incident.scheduler.expiry import revert_expired_controls
from llm_incident.scheduler.leader import Leadership
from llm_incident.scheduler.mitigation_check import check_mitigations
from llm_incident.scheduler.reminders import send_follow_ups, send_status_nudges
from llm_incident.scheduler.retention import STORAGE_SECONDS, run_storage
from llm_incident.scheduler.triage_refresh import refresh_triage

log = logging.getLogger(__name__)
TICK_SECONDS = 15  # reminders, expiries and checks (alerts: their own interval)
FOLLOWUP_SECONDS = 300
FASTEST_SECONDS = 0.5  # with a faster clock (the demo's), no job runs more often than this

Job = Callable[[JobContext, datetime], Any]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Scheduler:
    """Started and stopped with the server; `status()` says whether this process leads."""

    def __init__(self, jc: JobContext, *, leadership: Leadership, alerts_on: bool,
                 alert_interval_seconds: int = 60,
                 clock: Callable[[], datetime] = utc_now,
                 metrics: ServiceMetrics | None = None, time_scale: float = 1.0) -> None:
        """`time_scale`: how many seconds of `clock` pass per wall-clock second (the demo's
        `--speed`); the intervals, in clock time, are divided by it on the wall clock."""
        self.jc, self.leadership, self.clock = jc, leadership, clock
        self.time_scale = time_scale
        self.metrics = metrics
        tick = min(TICK_SECONDS, alert_interval_seconds)
        self.jobs: dict[str, tuple[Job, int]] = {
            "expiry": (revert_expired_controls, tick),
            "status-nudges": (send_status_nudges, tick),
            "mitigation-checks": (check_mitigations, tick),
            "triage-refresh": (refresh_triage, tick),
            "follow-ups": (send_follow_ups, FOLLOWUP_SECONDS),
            "storage": (run_storage, STORAGE_SECONDS),
            "control-proofs": (update_control_proofs, PROOF_SECONDS),
        }
        if alerts_on:
            self.jobs["alerts"] = (run_alerts, alert_interval_seconds)
        self.runs: dict[str, dict[str, Any]] = {}
        self._leading = False
        self._aps: BackgroundScheduler | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        # one INFO line per run of a 1-second job would bury the service's own log
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        self._aps = BackgroundScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        now = utc_now()
        for name, (_job, seconds) in self.jobs.items():
            every = max(FASTEST_SECONDS, seconds / self.time_scale) if self.time_scale != 1 else seconds
            self._aps.add_job(self.run_job, "interval", args=[name], seconds=every, id=name,
                              name=name, replace_existing=True, next_run_time=now)
        self._aps.start()
        log.info("scheduler started: %s", ", ".join(f"{n} every {s} s"
                                                   for n, (_j, s) in self.jobs.items()))

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        self.leadership.release()
        self._leading = False

    def run_job(self, name: str) -> bool:
        """Run one job now if this process leads; False when it does not."""
        leading = self.leadership.is_leader()
        if leading != self._leading:
            log.info("scheduler: %s", "leading" if leading else "standing by")
            self._leading = leading
        if self.metrics is not None:
            self.metrics.scheduler_leader.set(1 if leading else 0)
        if not leading:
            return False
        job, _seconds = self.jobs[name]
        started = time.perf_counter()
        try:
            job(self.jc, self.clock())
            error = None
        except Exception as exc:  # noqa: BLE001 - one failed run must not stop the others
            log.exception("scheduler job %s failed; it runs again at its next interval", name)
            error = str(exc)[:500]
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.job_runs.labels(name, "error" if error else "ok").inc()
            self.metrics.job_seconds.labels(name).observe(seconds)
        with self._lock:
            self.runs[name] = {"at": self.clock().isoformat(), "error": error,
                               "seconds": round(seconds, 4)}
        return True

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"leader": self._leading, "jobs": {n: s for n, (_j, s) in self.jobs.items()},
                    "last_runs": dict(self.runs)}
