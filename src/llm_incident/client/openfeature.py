"""OpenFeature provider backed by a `Controls` cache (needs `pip install 'llm-incident[openfeature]'`).

Flags, per route: `<route>.enabled` (bool), `<route>.max_tokens` (int), `<route>.model` (str),
`<route>.provider` (str), `<route>.retry_cap` (int), and `<route>.controls` (object with all of them). A control
with no override (e.g. no clamp) resolves to the caller's default with reason DEFAULT. Any other key is
FLAG_NOT_FOUND and a value of the wrong type TYPE_MISMATCH; either way the OpenFeature client returns the
caller's default. Reasons: CACHED (from the server), STALE (server unreachable, last known value), DEFAULT.

    from openfeature import api
    api.set_provider(ControlsProvider(Controls(url, key)))
    api.get_client().get_boolean_value("support.reply.enabled", True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from llm_incident.client.controls import Controls
from llm_incident.client.decision import Decision

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

    def get_metadata(self) -> Metadata:
        return Metadata(name="llm-incident")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Give the first load up to `ready_timeout` seconds; never fails (routes fail open or closed)."""
        self.controls.wait_ready(self.ready_timeout)

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


def _as_object(decision: Decision) -> dict[str, Any]:
    return {"enabled": decision.allowed, "max_tokens": decision.max_tokens, "model": decision.model,
            "provider": decision.provider, "retry_cap": decision.retry_cap,
            "fallback_message": decision.fallback_message, "version": decision.version}


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)
