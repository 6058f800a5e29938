"""`EventLogger`: batches call events in a background thread and POSTs them to `/v1/events`.

`log()` never blocks and never raises: events wait in a bounded queue (full → dropped and counted), a daemon
thread sends them in batches and retries transport errors, 408, 429 and 5xx with backoff (honouring
`Retry-After`) for as long as it takes, keeping the events meanwhile. Every event gets an `event_id` when it is
logged, so a resent batch is deduplicated by the server. Other 4xx answers are not retried: those events are
counted as rejected and the reason is logged once (logger `llm_incident.client`).
"""

from __future__ import annotations

import atexit
import logging
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from llm_incident_client.sender import LoggerStats, Sender
from llm_incident_client.tracking import Tracker
from llm_incident_client.transport import auth_headers, base_url

__all__ = ["EventLogger", "LoggerStats"]

log = logging.getLogger("llm_incident.client")


class EventLogger:
    """Sends LLM call events to an llm-incident server from a background thread.

    Construction validates the arguments (ValueError) and starts nothing; the sender thread starts with the
    first `log()`. From then on nothing raises into the application. Pending events are flushed at interpreter
    exit (up to `exit_timeout` seconds); an unreferenced logger is garbage-collected and drains in the
    background. `close()` — or `with EventLogger(...)` — flushes and stops explicitly.
    """

    def __init__(self, url: str, api_key: str, *, batch_size: int = 500, flush_interval: float = 1.0,
                 max_queue: int = 10_000, timeout: float = 10.0, max_retry_backoff: float = 30.0,
                 max_batch_bytes: int = 4_000_000, exit_timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        _check(1 <= batch_size <= 5000, "batch_size must be between 1 and 5000")
        _check(flush_interval > 0, "flush_interval must be > 0")
        _check(max_queue >= 1, "max_queue must be >= 1")
        _check(timeout > 0 and max_retry_backoff >= 0 and exit_timeout >= 0,
               "timeout must be > 0; max_retry_backoff and exit_timeout >= 0")
        _check(max_batch_bytes >= 1024, "max_batch_bytes must be >= 1024")
        self.url = base_url(url)
        self._sender = Sender(
            f"{self.url}/v1/events", auth_headers(api_key), batch_size=batch_size,
            flush_interval=flush_interval, max_queue=max_queue, max_batch_bytes=max_batch_bytes,
            timeout=timeout, max_retry_backoff=max_retry_backoff, transport=transport)
        atexit.register(self._sender.close, exit_timeout)
        self._finalizer = weakref.finalize(self, self._sender.close_in_background, exit_timeout)
        self._finalizer.atexit = False

    def log(self, event: Mapping[str, Any]) -> str | None:
        """Queue one event (a shallow copy, `event_id` added when absent); its id, or None if not queued."""
        try:
            if not isinstance(event, Mapping):
                self._sender.count("invalid")
                self._sender.warn_once("type", "log() expects a mapping, got %s: ignored", type(event).__name__)
                return None
            record = dict(event)
            if record.get("event_id") is None:
                record["event_id"] = uuid.uuid4().hex
            return record["event_id"] if self._sender.enqueue(record) else None
        except Exception as exc:  # noqa: BLE001 - log() never raises into the application
            self._sender.count("invalid")
            self._sender.warn_once("log", "log() could not queue an event: %s: %s", type(exc).__name__, exc)
            return None

    def track(self, route: str, *, model: str | None = None, provider: str | None = None,
              env: str | None = None, **fields: Any) -> Tracker:
        """Measure one LLM call (context manager or decorator) and log it here; see `tracking.Tracker`."""
        return Tracker(_constant(self), route, model=model, provider=provider, env=env, **fields)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Block until everything logged so far is sent (or refused); False if `timeout` ran out first."""
        try:
            return self._sender.flush(timeout)
        except Exception:  # noqa: BLE001
            log.exception("llm-incident flush failed")
            return False

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, then stop the sender; later `log()` calls are dropped. True when nothing was left behind."""
        try:
            self._finalizer.detach()
            atexit.unregister(self._sender.close)
            return self._sender.close(timeout)
        except Exception:  # noqa: BLE001
            log.exception("llm-incident close failed")
            return False

    @property
    def stats(self) -> LoggerStats:
        """A snapshot of the counters (see `LoggerStats`)."""
        return self._sender.stats()

    def __enter__(self) -> EventLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventLogger({self.url!r}, {self.stats})"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _constant(logger: EventLogger) -> Callable[[], EventLogger]:
    return lambda: logger
