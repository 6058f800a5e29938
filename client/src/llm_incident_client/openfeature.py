"""OpenFeature provider backed by a `Controls` cache (needs `pip install 'llm-incident[openfeature]'`).

Flags, per route: `<route>.enabled` (bool), `<route>.max_tokens` (int), `<route>.model` (str),
`<route>.provider` (str), `<route>.retry_cap` (int), and `<route>.controls` (object with all of them). A control
with no override (e.g. no clamp) resolves to the caller's default with reason DEFAULT. Any other key is
FLAG_NOT_FOUND and a value of the wrong type TYPE_MISMATCH; either way the OpenFeature client returns the
caller's default. Reasons: CACHED (from the server), STALE (server unreachable, last known value), DEFAULT.

Events follow the cache: PROVIDER_STALE when the server fails after a load (last known values in force),
PROVIDER_ERROR when it fails before anything was loaded (routes fail open or closed), PROVIDER_READY when it
answers again, PROVIDER_CONFIGURATION_CHANGED with the flags a load changed. `initialize` raises
ProviderNotReadyError (status ERROR) when nothing loads within `ready_timeout`; flags still resolve, and
PROVIDER_READY follows the first load.

    from openfeature import api
    api.set_provider(ControlsProvider(Controls(url, key)))
    api.get_client().get_boolean_value("support.reply.enabled", True)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from llm_incident_client.controls import Controls, ControlsEvent
from llm_incident_client.decision import Decision

__all__ = ["ControlsProvider"]

_FIELDS: dict[str, tuple[str, type]] = {
    "enabled": ("allowed", bool),
    "max_tokens": ("max_tokens", int),
    "model": ("model", str),
    "provider": ("provider", str),
    "retry_cap": ("retry_cap", int),
}
_OBJECT_FLAG = "controls"


class ControlsProvider(AbstractProvider):
    """Resolves `<route>.<control>` flags from a `Controls` instance (which it does not own or close)."""

    def __init__(self, controls: Controls, *, ready_timeout: float = 2.0) -> None:
        super().__init__()
        self.controls = controls
        self.ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._live = False  # initialize() is over: changes of the cache become events

    def get_metadata(self) -> Metadata:
        return Metadata(name="llm-incident")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Give the first load up to `ready_timeout` seconds; ProviderNotReadyError if none came (flags still
        resolve: routes fail open or closed, and PROVIDER_READY follows the first load)."""
        self.controls.remove_listener(self._on_change)  # once, if the provider is initialised again
        self.controls.add_listener(self._on_change)
        self.controls.wait_ready(self.ready_timeout)
        with self._lock:
            self._live = True
        if not self.controls.ready:  # checked after going live, so a load from now on is an event
            raise ProviderNotReadyError(f"no controls loaded from {self.controls.url} within "
                                        f"{self.ready_timeout:g} s: {self.controls.last_error or 'no answer yet'}")

    def shutdown(self) -> None:
        """Stop emitting events (the `Controls` is the caller's to close)."""
        self.controls.remove_listener(self._on_change)
        with self._lock:
            self._live = False

    def _on_change(self, event: ControlsEvent) -> None:
        with self._lock:
            if not self._live:  # during initialize() the SDK reports the outcome itself
                return
        if event.kind == "ready":
            self.emit_provider_ready(ProviderEventDetails(message=f"controls loaded from {self.controls.url}"))
        elif event.kind == "stale":
            self.emit_provider_stale(ProviderEventDetails(message=event.message))
        elif event.kind == "error":
            self.emit_provider_error(ProviderEventDetails(message=event.message, error_code=ErrorCode.GENERAL))
        elif event.kind == "changed":
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=changed_flags(event.changes)))

    # --- resolution ------------------------------------------------------------------------------------
    def _resolve(self, flag_key: str, default: Any, kind: type | tuple[type, ...]) -> FlagResolutionDetails[Any]:
        route, _, name = flag_key.rpartition(".")
        if not route or (name not in _FIELDS and name != _OBJECT_FLAG):
            return _error(default, ErrorCode.FLAG_NOT_FOUND,
                          f"unknown flag {flag_key!r}: use <route>.{{{','.join([*_FIELDS, _OBJECT_FLAG])}}}")
        decision = self.controls.guard(route)
        reason = self._reason(decision)
        meta = {"version": decision.version} if decision.version is not None else {}
        if name == _OBJECT_FLAG:
            value: Any = _as_object(decision)
        else:
            attr, field_type = _FIELDS[name]
            value = getattr(decision, attr)
            if value is None:  # no override: the caller's own default applies
                return FlagResolutionDetails(value=default, reason=Reason.DEFAULT, flag_metadata=meta)
            if field_type is int and kind is float:
                value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            return _error(default, ErrorCode.TYPE_MISMATCH, f"{flag_key} is a {type(value).__name__} flag")
        return FlagResolutionDetails(value=value, reason=reason, flag_metadata=meta)

    def _reason(self, decision: Decision) -> Reason:
        if decision.version is None:
            return Reason.DEFAULT
        return Reason.STALE if self.controls.stale else Reason.CACHED

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, bool)

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None
                               ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, str)

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None
                                ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, int)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None
                              ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, float)

    def resolve_object_details(
        self, flag_key: str, default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, (dict, list))


def changed_flags(changes: Mapping[str, tuple[Decision | None, Decision | None]]) -> list[str]:
    """The flag keys whose value differs between each route's (before, after) decision."""
    flags = []
    for route, (before, after) in sorted(changes.items()):
        old, new = before or Decision(), after or Decision()
        flags += [f"{route}.{name}" for name, (attr, _) in _FIELDS.items()
                  if getattr(old, attr) != getattr(new, attr)]
        if old != new:
            flags.append(f"{route}.{_OBJECT_FLAG}")
    return flags


def _as_object(decision: Decision) -> dict[str, Any]:
    return {"enabled": decision.allowed, "max_tokens": decision.max_tokens, "model": decision.model,
            "provider": decision.provider, "retry_cap": decision.retry_cap,
            "fallback_message": decision.fallback_message, "version": decision.version}


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)
