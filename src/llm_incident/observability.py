"""Prometheus metrics of the service itself, on a registry owned by one app instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class ServiceMetrics:
    """Counters and histograms exposed at `GET /metrics`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_*: collections by generation (docs/operations.md)
        self.http_requests = Counter(
            "llm_incident_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "llm_incident_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "llm_incident_events_ingested",
            "Events offered to ingest, by outcome",
            ["source", "outcome"],
            registry=self.registry,
        )

        self.job_runs = Counter(
            "llm_incident_scheduler_job_runs",
            "Scheduled job runs in this process (only the leader runs them), by outcome",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "llm_incident_scheduler_job_duration_seconds",
            "Scheduled job run time",
            ["job"],
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "llm_incident_controls_long_polls",
            "Control long-polls (?wait=) waiting now in this process",
            registry=self.registry,
        )
        self.scheduler_leader = Gauge(
            "llm_incident_scheduler_leader",
            "1 when this process runs the scheduled jobs",
            registry=self.registry,
        )

    def count_ingest(self, source: str, accepted: int, duplicates: int, rejected: int) -> None:
        for outcome, n in (("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)):
            if n:
                self.events_ingested.labels(source, outcome).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
