"""The process-wide default logger behind the module-level `track(...)`."""

from __future__ import annotations

import threading
from typing import Any

from llm_incident_client.events import EventLogger
from llm_incident_client.tracking import Tracker

_lock = threading.Lock()
_default: EventLogger | None = None


def configure(url: str, api_key: str, **options: Any) -> EventLogger:
    """Create the default logger (options as for `EventLogger`); a previous default is closed."""
    global _default
    logger = EventLogger(url, api_key, **options)
    with _lock:
        previous, _default = _default, logger
    if previous is not None:
        previous.close()
    return logger


def get_logger() -> EventLogger | None:
    """The default logger, or None before `configure()`."""
    return _default


def shutdown(timeout: float | None = 5.0) -> bool:
    """Close and forget the default logger; True when everything was delivered (or none was configured)."""
    global _default
    with _lock:
        previous, _default = _default, None
    return previous.close(timeout) if previous is not None else True


def track(route: str, *, model: str | None = None, provider: str | None = None, env: str | None = None,
          **fields: Any) -> Tracker:
    """Measure one LLM call and log it to the default logger; a no-op wrapper until `configure()`.

    The logger is looked up when the call ends, so `@track(...)` may decorate functions at import time.
    """
    return Tracker(get_logger, route, model=model, provider=provider, env=env, **fields)
