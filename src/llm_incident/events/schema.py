"""The ingest contract for one event (see PRODUCT.md "Event fields"), validated with pydantic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Status = Literal["ok", "flagged", "error"]


def _short(max_length: int):
    return Field(default=None, min_length=1, max_length=max_length)


class EventIn(BaseModel):
    """One LLM call as the application reports it; unknown fields are rejected, not dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str | None = _short(200)
    ts: datetime | None = None
    route: str = Field(min_length=1, max_length=200)
    env: str = Field(default="prod", min_length=1, max_length=100)
    model: str | None = _short(200)
    provider: str | None = _short(100)
    region: str | None = _short(100)
    customer_tier: str | None = _short(100)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    duration_ms: float | None = Field(default=None, ge=0)
    status: Status = "ok"
    error_code: str | None = _short(100)
    contains_banned: bool = False
    cost_usd: float | None = Field(default=None, ge=0)
    prompt_id: str | None = _short(200)
    prompt_version: str | None = _short(100)
    attempt: int = Field(default=1, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    input_excerpt: str | None = None
    output_excerpt: str | None = None

    @field_validator("error_code", "prompt_version", "prompt_id", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        return str(value) if isinstance(value, int) else value

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("timestamp needs a UTC offset (RFC 3339), e.g. 2026-11-26T14:00:00Z")
        return value
