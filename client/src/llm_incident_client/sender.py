"""The bounded event queue and the background thread that sends it to `/v1/events` (see `events.py`)."""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from llm_incident_client.transport import is_retryable, retry_after_seconds, retry_delay

log = logging.getLogger("llm_incident.client")

_BASE_BACKOFF = 0.5
_MAX_WARNINGS = 200
_BATCH_HEAD, _BATCH_TAIL = b'{"events":[', b"]}"
_SPLIT_STATUSES = (400, 413, 422)  # the batch as a whole is refused: halves may pass
_ISOLATE_AFTER = 3  # 500s in a row before a batch is split to isolate the event behind them
_DONE, _SPLIT, _DEFER, _STOP = object(), object(), object(), object()


@dataclass
class _Group:
    """Encoded events sent in one request, with their history of 500 answers."""

    parts: list[bytes]
    server_errors: int = 0
    first_error_at: int | None = None  # batches the server had taken when the first 500 came


@dataclass(frozen=True)
class LoggerStats:
    """Event counts since the logger was created.

    `sent`: stored by the server; `duplicates`: the server already had them (a resend after a lost reply);
    `rejected`: refused by the server (an invalid event, isolated by splitting a batch refused whole; a
    non-retryable 4xx; an event the server answers 500 for while taking others); `invalid`: refused locally
    (not a mapping, not JSON-serialisable, too large); `dropped`: not queued because the queue was full or the logger
    closed; `retries`: HTTP attempts repeated after a failure; `queued`: logged but not yet delivered.
    """

    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    dropped: int = 0
    retries: int = 0
    queued: int = 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact JSON for one event; datetimes as ISO 8601. TypeError/ValueError when it cannot be encoded."""
    return json.dumps(event, default=_json_default, allow_nan=False, ensure_ascii=False,
                      separators=(",", ":")).encode()


def _culprit(event: Mapping[str, Any]) -> str:
    """The first field of `event` that cannot be encoded (NaN, a lone surrogate, an odd type)."""
    for key, value in event.items():
        try:
            encode_event({key: value})
        except Exception:  # noqa: BLE001 - the same failures encode_event has
            return ascii(key)
    return "?"


def split_by_size(parts: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """Consecutive groups of encoded events whose request body stays within `max_bytes`."""
    groups: list[list[bytes]] = []
    size = 0
    for part in parts:
        if not groups or size + 1 + len(part) > max_bytes:
            groups.append([])
            size = len(_BATCH_HEAD) + len(_BATCH_TAIL) - 1  # no comma before the first event
        groups[-1].append(part)
        size += 1 + len(part)
    return groups


class Sender:
    """The queue, the counters and the sender thread. Holds no reference to its `EventLogger`."""

    def __init__(self, endpoint: str, headers: dict[str, str], *, batch_size: int, flush_interval: float,
                 max_queue: int, max_batch_bytes: int, timeout: float, max_retry_backoff: float,
                 transport: httpx.BaseTransport | None) -> None:
        self.endpoint, self.headers = endpoint, headers
        self.batch_size, self.flush_interval, self.max_queue = batch_size, flush_interval, max_queue
        self.max_batch_bytes, self.timeout, self.max_retry_backoff = max_batch_bytes, timeout, max_retry_backoff
        self.transport = transport
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # wakes the sender
        self._progress = threading.Condition(self._lock)  # wakes flush()/close()
        self._buf: deque[dict[str, Any]] = deque()
        self._seq = 0  # events ever queued
        self._done = 0  # events finished: sent, duplicate, rejected or invalid
        self._flush_target = 0
        self._counts = dict.fromkeys(("sent", "duplicates", "rejected", "invalid", "dropped", "retries"), 0)
        self._closed = False
        self._deadline: float | None = None  # give up retrying after this (set by close)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._failing = False
        self._successes = 0  # batches the server took (sender thread only)

    # --- application side -------------------------------------------------------------------------------
    def enqueue(self, event: dict[str, Any]) -> bool:
        with self._lock:
            if self._closed or self._seq - self._done >= self.max_queue:
                self._counts["dropped"] += 1
                full = not self._closed
            else:
                if self._thread is None and not self._start():
                    self._counts["dropped"] += 1
                    return False
                self._buf.append(event)
                self._seq += 1
                if len(self._buf) in (1, self.batch_size):
                    self._work.notify()
                return True
        if full:
            self.warn_once("full", "event queue full (max_queue=%d): dropping events; see stats.dropped",
                           self.max_queue)
        else:
            self.warn_once("closed", "log() after close(): event dropped")
        return False

    def _start(self) -> bool:
        """With the lock held: start the sender thread (False when the interpreter refuses, e.g. at exit)."""
        thread = threading.Thread(target=self._run, name="llm-incident-events", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        self._thread = thread
        return True

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> LoggerStats:
        with self._lock:
            return LoggerStats(**self._counts, queued=self._seq - self._done)

    def flush(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._seq
            self._flush_target = max(self._flush_target, target)
            self._work.notify()
            return self._wait_done(target, deadline)

    def close(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._closed = True
            if deadline is not None:
                self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
            self._work.notify()
            delivered = self._wait_done(self._seq, deadline)
            left, thread = self._seq - self._done, self._thread
        self._stop.set()
        with self._lock:
            self._work.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()) + 0.1)
        if left:
            log.warning("llm-incident event logger closed with %d events undelivered", left)
        return delivered

    def close_in_background(self, timeout: float) -> None:
        """Stop taking events; the sender drains what it can within `timeout`, nobody waits for it."""
        with self._lock:
            self._closed = True
            self._deadline = time.monotonic() + timeout
            self._work.notify()
        atexit.unregister(self.close)

    def _wait_done(self, target: int, deadline: float | None) -> bool:
        """With the lock held: wait until the first `target` events are finished or the deadline passes."""
        while self._done < target:
            if self._thread is None or not self._thread.is_alive():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._progress.wait(remaining)
        return True

    # --- sender thread ------------------------------------------------------------------------------------
    def _should_stop(self) -> bool:
        return self._stop.is_set() or (self._deadline is not None and time.monotonic() >= self._deadline)

    def _run(self) -> None:
        try:
            with httpx.Client(headers=self.headers, timeout=self.timeout, transport=self.transport) as http:
                while (batch := self._take()) is not None:
                    self._deliver(http, batch)
        except Exception:  # noqa: BLE001 - the sender must not die silently
            log.exception("llm-incident event logger stopped unexpectedly")
        finally:
            with self._lock:
                self._progress.notify_all()

    def _take(self) -> list[dict[str, Any]] | None:
        """The next batch: waits for events, then lingers up to flush_interval to fill it; None to stop."""
        with self._lock:
            while not self._buf:
                if self._closed or self._stop.is_set():
                    return None
                self._work.wait()
            linger_until = time.monotonic() + self.flush_interval
            while (len(self._buf) < self.batch_size and not self._closed
                   and self._flush_target <= self._done):
                remaining = linger_until - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(remaining)
            if self._should_stop():
                return None
            return [self._buf.popleft() for _ in range(min(len(self._buf), self.batch_size))]

    def _finish(self, **counts: int) -> None:
        with self._lock:
            for key, n in counts.items():
                self._counts[key] += n
                self._done += n
            self._progress.notify_all()

    def _deliver(self, http: httpx.Client, batch: list[dict[str, Any]]) -> None:
        parts = []
        room = self.max_batch_bytes - len(_BATCH_HEAD) - len(_BATCH_TAIL)
        for event in batch:
            try:
                data = encode_event(event)
            except Exception as exc:  # noqa: BLE001 - anything the app put in an event
                self._finish(invalid=1)
                self.warn_once(f"encode:{type(exc).__name__}", "dropping event %s: field %s: %s",
                               event.get("event_id"), _culprit(event), exc)
                continue
            if len(data) > room:
                self._finish(invalid=1)
                self.warn_once("size", "dropping event %s: %d bytes, more than max_batch_bytes=%d",
                               event.get("event_id"), len(data), self.max_batch_bytes)
                continue
            parts.append(data)
        for group in split_by_size(parts, self.max_batch_bytes):
            if self._should_stop():
                return
            try:
                self._send(http, group)
            except Exception:  # noqa: BLE001 - never lose track of a batch
                self._finish(rejected=len(group))
                log.exception("llm-incident event logger: %d events lost to an unexpected error", len(group))

    def _send(self, http: httpx.Client, parts: list[bytes]) -> None:
        """Deliver one batch; a batch the server refuses as a whole (400/413/422, or 500 again and
        again) is split in halves until the events that cause it stand alone and are rejected, so
        one poison event never holds back the others. Events stay queued when the logger stops."""
        pending = deque([_Group(parts)])
        while pending:
            group = pending.popleft()
            outcome = self._post(http, group, alone=not pending)
            if outcome is _STOP:
                return
            if outcome is _SPLIT:
                half = len(group.parts) // 2
                pending.extendleft([_Group(group.parts[half:]), _Group(group.parts[:half])])
            elif outcome is _DEFER:
                pending.append(group)

    def _post(self, http: httpx.Client, group: _Group, *, alone: bool) -> object:
        """POST one group until it is answered for good (_DONE), must be split (_SPLIT) or put
        behind the others (_DEFER), or the logger stops (_STOP)."""
        body = _BATCH_HEAD + b",".join(group.parts) + _BATCH_TAIL
        attempt, n = 0, len(group.parts)
        while True:
            retry_after = None
            try:
                response = http.post(self.endpoint, content=body,
                                     headers={"Content-Type": "application/json"})
            except httpx.RequestError as exc:
                problem = f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if response.is_success:
                    self._successes += 1
                    self._accept(response, n, attempt)
                    return _DONE
                if status in _SPLIT_STATUSES and n > 1:
                    return _SPLIT
                if not is_retryable(status):
                    self.warn_once(f"status:{status}", "%d events rejected with HTTP %d (not retried): %s",
                                   n, status, _error_text(response))
                    self._finish(rejected=n)
                    return _DONE
                if status == 500:
                    outcome = self._after_server_error(group, alone, response)
                    if outcome is not None:
                        return outcome
                problem = f"{self.endpoint} answered HTTP {status}"
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if not self._failing:
                self._failing = True
                log.warning("llm-incident events held for retry (%s); queue bound %d", problem, self.max_queue)
            delay = retry_delay(attempt, retry_after, base=_BASE_BACKOFF, cap=self.max_retry_backoff)
            if self._should_stop() or self._sleep(delay):
                return _STOP
            attempt += 1
            self.count("retries")

    def _after_server_error(self, group: _Group, alone: bool, response: httpx.Response) -> object | None:
        """A 500 (a server bug, perhaps triggered by one event): after `_ISOLATE_AFTER` of them split the
        group; a lone event is rejected once the server has taken other events since it first failed
        (else it waits behind the others, or is retried when nothing else is left). None: retry."""
        if group.first_error_at is None:
            group.first_error_at = self._successes
        group.server_errors += 1
        if group.server_errors < _ISOLATE_AFTER:
            return None
        if len(group.parts) > 1:
            return _SPLIT
        if self._successes > group.first_error_at:
            self.warn_once("poison500", "1 event rejected: the server answers HTTP 500 for it while it takes "
                           "others (%s)", _error_text(response))
            self._finish(rejected=1)
            return _DONE
        return None if alone else _DEFER

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; True when the logger is stopping instead."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        self._stop.wait(seconds)
        return self._should_stop()

    def _accept(self, response: httpx.Response, n: int, attempt: int) -> None:
        """Count a 2xx answer `{accepted, duplicates, rejected: [...]}`; log each kind of rejection once."""
        try:
            reply = response.json()
            rejections = [r for r in reply.get("rejected") or [] if isinstance(r, dict)]
            duplicates = int(reply.get("duplicates") or 0)
        except Exception:  # noqa: BLE001 - an odd 2xx still means the server took the batch
            self.warn_once("reply", "unexpected reply from %s; counting the batch as sent", self.endpoint)
            rejections, duplicates = [], 0
        for item in rejections:
            errors = item.get("errors") or [{}]
            first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
            reason = f"{first.get('field', '?')}: {first.get('message', '?')}"
            self.warn_once(f"rejected:{reason}", "event %s rejected by the server: %s",
                           item.get("event_id"), reason)
        if self._failing:
            self._failing = False
            log.info("llm-incident events delivered again after %d retries", attempt)
        rejected = min(len(rejections), n)
        duplicates = min(max(duplicates, 0), n - rejected)
        self._finish(sent=n - rejected - duplicates, duplicates=duplicates, rejected=rejected)

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        """Log at WARNING the first time for `key`, at DEBUG afterwards."""
        with self._lock:
            first = key not in self._warned and len(self._warned) < _MAX_WARNINGS
            if first:
                self._warned.add(key)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error"))[:300]
    except Exception:  # noqa: BLE001
        return response.text[:300]
