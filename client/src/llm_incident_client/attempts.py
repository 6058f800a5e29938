"""One event per upstream attempt, for the integrations (OpenAI, LiteLLM): start the clock, log the outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from llm_incident_client.default import get_logger
from llm_incident_client.tracking import Call, EventSink, error_code_of, utc_now_rfc3339

log = logging.getLogger("llm_incident.client")

SinkResolver = Callable[[], EventSink | None]


def sink_resolver(events: EventSink | None) -> SinkResolver:
    """`events` itself, or (None) the default logger of `configure()` looked up when each event is logged."""
    return get_logger if events is None else (lambda: events)


class Attempt:
    """The event of one upstream call; `finish()` logs it once (later calls are ignored), never raises."""

    def __init__(self, sink: SinkResolver, call: Call) -> None:
        self._sink = sink
        self.call = call
        self.call.ts = utc_now_rfc3339()
        self._started = time.perf_counter()
        self.done = False

    def finish(self, *, tokens_in: int | None = None, tokens_out: int | None = None,
               error: BaseException | None = None, error_code: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            call = self.call
            call.duration_ms = round((time.perf_counter() - self._started) * 1000, 3)
            call.tokens_in, call.tokens_out = _count(tokens_in), _count(tokens_out)
            if error is not None or error_code is not None:
                call.status = "error"
                call.error_code = error_code or error_code_of(error)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - recording must never break the application's call
            log.debug("llm-incident: could not record the call", exc_info=True)
            return
        log_call(self._sink, call)


def log_call(sink: SinkResolver, call: Call) -> None:
    """Log `call` to the sink of the moment (none: dropped); never raises."""
    try:
        target = sink()
        if target is not None:
            target.log(call.to_event())
    except Exception:  # noqa: BLE001 - recording must never break the application's call
        log.debug("llm-incident: could not log the call", exc_info=True)


def new_call(route: str, *, env: str | None, model: Any, provider: str | None, attempt: int,
             metadata: Mapping[str, Any]) -> Call:
    """The record of one attempt, before its outcome is known."""
    return Call(route=route, env=env, model=model if isinstance(model, str) and model else None,
                provider=provider, attempt=attempt, metadata=dict(metadata))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
