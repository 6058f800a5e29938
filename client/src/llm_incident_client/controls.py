"""`Controls`: the LLM app's copy of its route controls, read in microseconds, kept current in the background.

A daemon thread loads `GET /v1/controls?env=…` and then long-polls it (`wait`, `If-None-Match`), so a flip on
the server reaches `guard()` within a round trip. During an outage the last known good values stay in force and
the thread retries: quickly while the server cannot be reached at all (connection refused, timeouts, gateway
502/503/504 — a restart), so a restarted server is seen within `max_reconnect_delay` (1 s) of answering; with
exponential backoff up to `max_retry_backoff` while it answers errors; never sooner than `Retry-After`.
Listeners (`add_listener`) hear of each change of state: ready, stale, error, changed.

Each request also reports this instance to the control plane (header `X-LLM-Incident-Instance`, see
`instance.py`): its id, name, host, pid, package version, the routes it guards and the control version it
has applied for each, so an incident's thread can say "kill applied by 3/3 instances in 0.4 s".

Routes never fetched — before the first successful load, or outside `routes=` — get the fail-open default
(`allowed=True`, no overrides) unless `fail_open=False`, in which case they are refused with the fallback
message. Once a full load succeeded, a route the server does not list simply has no controls (allowed).
Nothing here raises into the application after construction.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from llm_incident_client.decision import Decision
from llm_incident_client.instance import HEADER, MAX_REPORTED_ROUTES, Identity, report_header
from llm_incident_client.transport import (
    auth_headers, backoff_delay, base_url, reconnect_delay, retry_after_seconds)

__all__ = ["Controls", "ControlsEvent", "Decision"]

log = logging.getLogger("llm_incident.client")

_BASE_BACKOFF = 0.5
_MIN_POLL_INTERVAL = 1.0  # when the server (or a proxy) answers at once instead of long-polling
_ALLOWED = Decision(version=0)
_GATEWAY_DOWN = (502, 503, 504)  # a proxy in front of a server that is not there (yet)


@dataclass(frozen=True)
class ControlsEvent:
    """A change of a `Controls` cache's state, as told to its listeners.

    kind: "ready" (first load, or the server answers again after failures), "stale" (the server fails after a
    load: the last known values stay in force), "error" (it fails before anything was loaded: routes get the
    fail-open/closed default), "changed" (a load changed some routes; `changes` maps each to (before, after),
    None where absent). `message` says what failed.
    """

    kind: Literal["ready", "stale", "error", "changed"]
    message: str | None = None
    changes: Mapping[str, tuple[Decision | None, Decision | None]] = field(default_factory=dict)


Listener = Callable[[ControlsEvent], None]


def decision_from(item: dict[str, Any], default_fallback: str | None) -> Decision:
    """A Decision from one control object of the HTTP API; ValueError/TypeError when malformed."""
    def opt(key: str, kind: type) -> Any:
        value = item.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
            raise TypeError(f"{key} is {type(value).__name__}")
        return value

    enabled = opt("enabled", bool)
    version = opt("version", int)
    if enabled is None or version is None:
        raise ValueError("enabled and version are required")
    return Decision(allowed=enabled, fallback_message=opt("fallback_message", str) or default_fallback,
                    max_tokens=opt("max_tokens", int), model=opt("model", str), provider=opt("provider", str),
                    retry_cap=opt("retry_cap", int), version=version)


class _Poller:
    """The cache and the thread that refreshes it. Holds no reference to its `Controls`."""

    def __init__(self, endpoint: str, headers: dict[str, str], params: dict[str, Any], *, covers_all: bool,
                 unfetched: Decision, default_fallback: str | None, wait: float, timeout: float,
                 max_retry_backoff: float, max_reconnect_delay: float,
                 transport: httpx.BaseTransport | None, identity: Identity) -> None:
        self.endpoint, self.headers, self.params = endpoint, headers, params
        self.covers_all, self.unfetched, self.default_fallback = covers_all, unfetched, default_fallback
        self.wait, self.timeout, self.transport = wait, timeout, transport
        self.max_retry_backoff, self.max_reconnect_delay = max_retry_backoff, max_reconnect_delay
        self.state: tuple[dict[str, Decision], Decision] = ({}, unfetched)  # swapped whole, read lock-free
        self.etag: str | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.failing = False
        self.down = False  # the last failure got no answer from our server (refused, timeout, gateway 5xx)
        self.last_error: str | None = None
        self.retry_after: float | None = None
        self.thread: threading.Thread | None = None
        self.listeners: list[Listener] = []
        self.identity = identity
        self.guarded: set[str] = set(params.get("route", ()))  # read lock-free by guard(), grown under lock
        self.guarded_lock = threading.Lock()
        self.applied_at: dict[str, float] = {}  # route -> monotonic time its current decision was loaded
        self.loaded_at = 0.0

    def note_guarded(self, route: str) -> None:
        """Remember a route passed to `guard()` (reported as guarded), up to MAX_REPORTED_ROUTES."""
        if isinstance(route, str) and len(self.guarded) < MAX_REPORTED_ROUTES:
            with self.guarded_lock:
                if len(self.guarded) < MAX_REPORTED_ROUTES:
                    self.guarded.add(route)

    def report(self) -> str:
        """The instance report header: the routes guarded and the version applied for each, with its age."""
        with self.guarded_lock:
            routes = sorted(self.guarded)
        now = time.monotonic()
        applied: dict[str, tuple[int, float]] = {}
        if self.ready.is_set():
            decisions = self.state[0]
            for route in routes:
                decision = decisions.get(route)
                version = decision.version if decision is not None and decision.version is not None else 0
                applied[route] = (version, now - self.applied_at.get(route, self.loaded_at))
        return report_header(self.identity, wait=self.wait, routes=routes, applied=applied)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="llm-incident-controls", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            timeout = httpx.Timeout(self.timeout, read=self.wait + self.timeout)
            with httpx.Client(headers=self.headers, timeout=timeout, transport=self.transport) as http:
                attempt = 0
                while not self.stop.is_set():
                    try:
                        delay = self.poll_once(http)
                    except Exception as exc:  # noqa: BLE001 - anything else: back off and try again
                        delay = self._failed(f"{type(exc).__name__}: {exc}")
                    if delay is not None and delay < 0:
                        delay = self._retry_delay(attempt)
                        attempt += 1
                    else:
                        attempt = 0
                    if delay is not None and self.stop.wait(delay):
                        break
        except Exception:  # noqa: BLE001 - the refresher must not die silently
            log.exception("llm-incident controls refresher stopped unexpectedly; keeping the last values")

    def _retry_delay(self, attempt: int) -> float:
        """Quick retries while the server is down (a restart), backoff while it answers errors; never
        sooner than its `Retry-After`."""
        if self.down:
            delay = reconnect_delay(attempt, cap=self.max_reconnect_delay)
        else:
            delay = backoff_delay(attempt, base=_BASE_BACKOFF, cap=self.max_retry_backoff)
        return delay if self.retry_after is None else max(delay, self.retry_after)

    def poll_once(self, http: httpx.Client) -> float | None:
        """One request: None to poll again at once, a pause in seconds, or -1 to back off."""
        self.retry_after = None
        params, headers, sent_tag = dict(self.params), {}, self.etag
        try:
            headers[HEADER] = self.report()
        except Exception:  # noqa: BLE001 - the report is best effort, the controls are not
            log.debug("llm-incident controls: cannot build the instance report", exc_info=True)
        reconnecting = self.failing  # after a failure, ask without waiting: back (and not stale) in one round trip
        if sent_tag is not None:
            if not reconnecting:
                params["wait"] = self.wait
            headers["If-None-Match"] = sent_tag
        started = time.monotonic()
        try:
            response = http.get(self.endpoint, params=params, headers=headers)
        except httpx.RequestError as exc:
            return self._failed(f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}", down=True)
        if self.stop.is_set():
            return None
        if response.status_code == 304:
            self._recovered()
            # An instant 304 means the server (or a proxy) did not hold the request: pace ourselves.
            held = reconnecting or time.monotonic() - started >= 0.05
            return None if held else _MIN_POLL_INTERVAL
        if response.status_code != 200:
            self.retry_after = retry_after_seconds(response.headers.get("retry-after"))
            return self._failed(f"{self.endpoint} answered HTTP {response.status_code}: {response.text[:200]}",
                                down=response.status_code in _GATEWAY_DOWN)
        try:
            items = response.json()
            if not isinstance(items, list):
                raise ValueError("expected a JSON array")
            first = not self.ready.is_set()
            changes = self._load(items, response.headers.get("etag"))
        except Exception as exc:  # noqa: BLE001 - keep the last good values
            return self._failed(f"unexpected answer from {self.endpoint}: {exc}")
        self._recovered(first)
        if changes and not first:
            self._tell(ControlsEvent("changed", changes=changes))
        # The same tag again in a 200 means If-None-Match was ignored: pace ourselves.
        return _MIN_POLL_INTERVAL if sent_tag is not None and self.etag == sent_tag else None

    def _load(self, items: list[Any], etag: str | None) -> dict[str, tuple[Decision | None, Decision | None]]:
        """Swap in the listed controls; the routes whose decision changed, (before, after)."""
        decisions: dict[str, Decision] = {}
        env = self.params["env"]
        for item in items:
            try:
                if item.get("env", env) == env:
                    decisions[item["route"]] = decision_from(item, self.default_fallback)
            except Exception as exc:  # noqa: BLE001 - skip one bad entry, keep the rest
                log.warning("llm-incident controls: ignoring malformed entry %r: %s", item, exc)
        before = self.state[0]
        self.state = (decisions, _ALLOWED if self.covers_all else self.unfetched)
        self.etag = etag
        changes = {route: (before.get(route), decisions.get(route)) for route in before.keys() | decisions.keys()
                   if before.get(route) != decisions.get(route)}
        now = time.monotonic()
        for route in changes:
            self.applied_at[route] = now
        if not self.ready.is_set():
            self.loaded_at = now
        self.ready.set()
        return changes

    def _failed(self, problem: str, *, down: bool = False) -> float:
        self.last_error, self.down = problem, down
        if not self.failing:
            self.failing = True
            log.warning("llm-incident controls unavailable (%s); keeping the last known values", problem)
            self._tell(ControlsEvent("stale" if self.ready.is_set() else "error", message=problem))
        return -1.0

    def _recovered(self, first: bool = False) -> None:
        if self.failing:
            self.failing = False
            log.info("llm-incident controls reachable again")
        elif not first:
            return
        self._tell(ControlsEvent("ready"))

    def _tell(self, event: ControlsEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener must not stop the refresher
                log.exception("llm-incident controls listener %r failed on %s", listener, event.kind)


class Controls:
    """Route controls for one env, cached in memory and refreshed by a background long-poll.

    `guard(route)` returns a `Decision` from memory (no I/O, never raises). Construction validates the
    arguments (ValueError) and starts the refresher thread (unless `start=False`); `close()` stops it.
    `routes=None` watches every route; a list watches only those. `fail_open` decides routes never fetched.
    While the server cannot be reached it is retried after 0.1, 0.2, 0.5, 1 s, then every
    `max_reconnect_delay` seconds (jittered); while it answers errors, with backoff up to `max_retry_backoff`.
    `instance_name` is how responders see this instance in acknowledgements (default: the host name);
    `instance_id` is a fresh random id per `Controls`.
    """

    def __init__(self, url: str, api_key: str, *, env: str = "prod", routes: Iterable[str] | None = None,
                 fail_open: bool = True, fallback_message: str | None = None, wait: float = 25.0,
                 timeout: float = 10.0, max_retry_backoff: float = 30.0, max_reconnect_delay: float = 1.0,
                 transport: httpx.BaseTransport | None = None, start: bool = True,
                 instance_name: str | None = None) -> None:
        if not isinstance(env, str) or not env.strip():
            raise ValueError("env must be a non-empty string")
        if not 0 < wait <= 30:
            raise ValueError("wait must be > 0 and <= 30 seconds (the server's limit)")
        if timeout <= 0 or max_retry_backoff < 0 or not max_reconnect_delay >= 0.05:
            raise ValueError("timeout must be > 0, max_retry_backoff >= 0 and max_reconnect_delay >= 0.05")
        if isinstance(routes, str):
            routes = [routes]
        watched = None if routes is None else sorted({str(r) for r in routes})
        params: dict[str, Any] = {"env": env}
        if watched is not None:
            if not watched:
                raise ValueError("routes must name at least one route (or be None for all)")
            params["route"] = watched
        self.url, self.env, self.routes, self.fail_open = base_url(url), env, watched, bool(fail_open)
        unfetched = Decision(allowed=self.fail_open, fallback_message=fallback_message)
        self._poller = _Poller(
            f"{self.url}/v1/controls", auth_headers(api_key), params, covers_all=watched is None,
            unfetched=unfetched, default_fallback=fallback_message, wait=wait, timeout=timeout,
            max_retry_backoff=max_retry_backoff, max_reconnect_delay=max_reconnect_delay, transport=transport,
            identity=Identity.create(instance_name))
        self._guarded = self._poller.guarded
        self._finalizer = weakref.finalize(self, self._poller.stop.set)
        if start:
            self.start()

    def start(self) -> None:
        """Start the refresher thread (done by the constructor unless `start=False`); idempotent."""
        if self._poller.thread is None:
            self._poller.start()

    def guard(self, route: str) -> Decision:
        """The decision for `route` from the cache: microseconds, no I/O, never raises."""
        try:
            decisions, missing = self._poller.state
            if route not in self._guarded:
                self._poller.note_guarded(route)
            return decisions.get(route, missing)
        except Exception:  # noqa: BLE001 - e.g. an unhashable route
            return self._poller.unfetched

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first successful load (True) or `timeout` seconds (False)."""
        return self._poller.ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Whether values have been loaded from the server at least once."""
        return self._poller.ready.is_set()

    @property
    def stale(self) -> bool:
        """True while the server cannot be reached (the last known values are in use)."""
        return self._poller.failing

    @property
    def last_error(self) -> str | None:
        return self._poller.last_error

    @property
    def instance_id(self) -> str:
        """This instance's id as the control plane lists it (`GET /v1/instances`)."""
        return self._poller.identity.id

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(ControlsEvent)` on each change of state, from the refresher thread (keep it quick)."""
        self._poller.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener`; a no-op if it was not added."""
        try:
            self._poller.listeners.remove(listener)
        except ValueError:
            pass

    def close(self, timeout: float = 1.0) -> None:
        """Stop the refresher (a long-poll in flight ends on its own, at most `wait` seconds later)."""
        self._poller.stop.set()
        thread = self._poller.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Controls:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Controls({self.url!r}, env={self.env!r}, ready={self.ready}, stale={self.stale})"
