"""`track(...)`: measure one LLM call as a context manager or decorator and log it as an event."""

from __future__ import annotations

import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

log = logging.getLogger("llm_incident.client")
F = TypeVar("F", bound=Callable[..., Any])


class EventSink(Protocol):
    def log(self, event: Mapping[str, Any]) -> str | None: ...


@dataclass(slots=True)
class Call:
    """The event being recorded for one LLM call; set fields on it inside the `with` block.

    `ts` (start, UTC) and `duration_ms` are filled in unless set; an exception sets `status="error"` and,
    unless set, `error_code`. `extra` holds other event fields passed to `track(...)`.
    """

    route: str
    env: str | None = None
    model: str | None = None
    provider: str | None = None
    region: str | None = None
    customer_tier: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    status: str = "ok"
    error_code: str | None = None
    contains_banned: bool | None = None
    cost_usd: float | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    attempt: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    input_excerpt: str | None = None
    output_excerpt: str | None = None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: str | None = None
    duration_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        """The event dict sent to `/v1/events`: unset fields left out."""
        event = dict(self.extra)
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and not (name == "metadata" and not value):
                event[name] = value
        return event


_FIELDS = tuple(f.name for f in fields(Call) if f.name != "extra")
_current: ContextVar[Call | None] = ContextVar("llm_incident_call", default=None)


def current_call() -> Call | None:
    """The innermost call being tracked in this thread / asyncio task, e.g. inside a decorated function."""
    return _current.get()


def error_code_of(exc: BaseException) -> str:
    """An HTTP-ish status from the exception (`status_code`, `http_status`, `response.status_code`), else its
    class name."""
    holders = (exc, getattr(exc, "response", None))
    for holder, attr in ((h, a) for h in holders for a in ("status_code", "http_status")):
        value = getattr(holder, attr, None)
        if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return type(exc).__name__


def utc_now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class _Active:
    call: Call
    started: float
    token: Token[Call | None] | None


class Tracker:
    """Context manager (sync and async) and decorator that logs one event per call.

    `resolve` returns the logger at the moment the event is logged, so a module-level `@track(...)` works
    before `configure()`; when it returns None the code still runs and nothing is logged. A decorated
    generator is measured only until it is created: wrap the consuming loop in `with` instead.
    """

    def __init__(self, resolve: Callable[[], EventSink | None], route: str, **fields: Any) -> None:
        self._resolve = resolve
        self._defaults = {k: v for k, v in fields.items() if v is not None}
        self._defaults["route"] = route
        self._stack: list[_Active] = []

    def new_call(self) -> Call:
        """A fresh record carrying the defaults given to `track(...)`."""
        known = {k: v for k, v in self._defaults.items() if k in _FIELDS}
        extra = {k: v for k, v in self._defaults.items() if k not in _FIELDS}
        if isinstance(known.get("metadata"), Mapping):
            known["metadata"] = dict(known["metadata"])
        return Call(**known, extra=extra)

    def _begin(self) -> _Active:
        call = self.new_call()
        call.ts = utc_now_rfc3339()
        return _Active(call, time.perf_counter(), _current.set(call))

    def _end(self, active: _Active, exc: BaseException | None) -> None:
        """Finish the record and log it; never raises (the application's exception must win)."""
        elapsed = time.perf_counter() - active.started
        try:
            call = active.call
            if call.duration_ms is None:
                call.duration_ms = round(elapsed * 1000, 3)
            if exc is not None:
                call.status = "error"
                if call.error_code is None:
                    call.error_code = error_code_of(exc)
            sink = self._resolve()
            if sink is not None:
                sink.log(call.to_event())
        except Exception:  # noqa: BLE001
            log.debug("llm-incident track: could not log the call", exc_info=True)
        finally:
            if active.token is not None:
                try:
                    _current.reset(active.token)
                except ValueError:  # exited in another context (e.g. a different task)
                    pass

    def __enter__(self) -> Call:
        active = self._begin()
        self._stack.append(active)
        return active.call

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        self._end(self._stack.pop(), exc)
        return False

    async def __aenter__(self) -> Call:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Decorate `fn` (sync or async): every invocation is one tracked call."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                active = self._begin()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    self._end(active, exc)
                    raise
                self._end(active, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            active = self._begin()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._end(active, exc)
                raise
            self._end(active, None)
            return result

        return wrapper  # type: ignore[return-value]
