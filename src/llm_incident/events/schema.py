"""The ingest contract for one event (see PRODUCT.md "Event fields"), validated with pydantic.

Every constraint here runs inside pydantic-core (no Python validators), which keeps batch
validation at a few microseconds per event.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

Status = Literal["ok", "flagged", "error"]


def _short(max_length: int):
    return Field(default=None, min_length=1, max_length=max_length)


# error codes and prompt versions arrive as 429 or "429"; stored as text
Code = Annotated[str, Field(min_length=1, max_length=100)] | StrictInt


class EventIn(BaseModel):
    """One LLM call as the application reports it; unknown fields are rejected, not dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str | None = _short(200)
    ts: AwareDatetime | None = None
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
    error_code: Code | None = None
    contains_banned: bool = False
    cost_usd: float | None = Field(default=None, ge=0)
    prompt_id: Code | None = None
    prompt_version: Code | None = None
    attempt: int = Field(default=1, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    input_excerpt: str | None = None
    output_excerpt: str | None = None


def as_text(value: str | int | None) -> str | None:
    """Codes and versions as stored: text."""
    return None if value is None else str(value)
