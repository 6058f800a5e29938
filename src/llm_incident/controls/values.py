"""The control fields, their defaults, and validation of requested values (plain data, no store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FIELDS: tuple[str, ...] = ("enabled", "max_tokens", "model", "provider", "retry_cap", "fallback_message")
DEFAULTS: dict[str, Any] = {
    "enabled": True, "max_tokens": None, "model": None, "provider": None, "retry_cap": None,
    "fallback_message": None,
}
MAX_TOKENS_RANGE = (1, 1_000_000)
RETRY_CAP_RANGE = (0, 20)
MAX_NAME_CHARS = 200
MAX_FALLBACK_CHARS = 2000
DEFAULT_ENV = "prod"


class ControlError(ValueError):
    """A control request that cannot be done; the message says what to fix."""


@dataclass(frozen=True)
class ControlState:
    """The controls in force for a route in an env. `version` 0 means "never changed": all defaults."""

    route: str
    env: str
    enabled: bool = True
    max_tokens: int | None = None
    model: str | None = None
    provider: str | None = None
    retry_cap: int | None = None
    fallback_message: str | None = None
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None
    expires_at: datetime | None = None

    def values(self) -> dict[str, Any]:
        """The six control fields as a dict."""
        return {name: getattr(self, name) for name in FIELDS}


def _int_in(name: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{name} must be a whole number between {low} and {high} (or null to clear)")
    if not low <= value <= high:
        raise ControlError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return value


def _name(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ControlError(f"{name} must be a non-empty string (or null to clear)")
    value = value.strip()
    if len(value) > MAX_NAME_CHARS:
        raise ControlError(f"{name} must be at most {MAX_NAME_CHARS} characters")
    return value


def _fallback(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ControlError("fallback_message must be a string (or null to clear)")
    if len(value) > MAX_FALLBACK_CHARS:
        raise ControlError(f"fallback_message must be at most {MAX_FALLBACK_CHARS:,} characters")
    return value.strip() or None


def validate_field(name: str, value: Any) -> Any:
    """The normalised value for one control field; ControlError when it is not acceptable."""
    if name == "enabled":
        if not isinstance(value, bool):
            raise ControlError("enabled must be true or false")
        return value
    if name == "max_tokens":
        return _int_in(name, value, *MAX_TOKENS_RANGE)
    if name == "retry_cap":
        return _int_in(name, value, *RETRY_CAP_RANGE)
    if name in ("model", "provider"):
        return _name(name, value)
    if name == "fallback_message":
        return _fallback(value)
    raise ControlError(f"unknown control {name!r}; known: {', '.join(FIELDS)}")


def validate_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised `{field: value}`, in `FIELDS` order; ControlError for unknown fields or bad values."""
    if not isinstance(changes, Mapping) or not changes:
        raise ControlError(f"nothing to change: give at least one of {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in changes if k not in FIELDS)
    if unknown:
        raise ControlError(f"unknown control {unknown[0]!r}; known: {', '.join(FIELDS)}")
    return {name: validate_field(name, changes[name]) for name in FIELDS if name in changes}


def validate_key(route: Any, env: Any) -> tuple[str, str]:
    """(route, env) stripped; ControlError when empty or too long."""
    if not isinstance(route, str) or not route.strip() or len(route.strip()) > MAX_NAME_CHARS:
        raise ControlError(f"route must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    if not isinstance(env, str) or not env.strip() or len(env.strip()) > 100:
        raise ControlError("env must be a non-empty string of at most 100 characters")
    return route.strip(), env.strip()


def validate_actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor.strip()) > MAX_NAME_CHARS:
        raise ControlError(f"actor must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    return actor.strip()


def validate_expiry(expires_at: Any, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
        raise ControlError("expires_at must be a timezone-aware datetime")
    if expires_at <= now:
        raise ControlError("expires_at must be in the future")
    return expires_at


def describe_active(state: ControlState) -> list[str]:
    """Plain words for each control that differs from its default, e.g. "killed",
    "max_tokens clamped to 800" (the card, panels, Home tab and postmortem all say it this way)."""
    parts = []
    if not state.enabled:
        parts.append("killed")
    if state.max_tokens is not None:
        parts.append(f"max_tokens clamped to {state.max_tokens:,}")
    if state.model:
        parts.append(f"model switched to {state.model}")
    if state.provider:
        parts.append(f"provider switched to {state.provider}")
    if state.retry_cap is not None:
        parts.append(f"retry cap {state.retry_cap}")
    return parts
