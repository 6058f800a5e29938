"""The ingest contract for one event (see PRODUCT.md "Event fields"), validated with pydantic.

Bounds come from `llm_incident.bounds` (shared with every other request model). Every constraint
runs inside pydantic-core except the range check of `ts` and the NUL scan of `metadata`, which
keeps batch validation at a few microseconds per event.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from llm_incident.bounds import INT_MAX, NO_NUL, Amount, Count, JsonObject, Positive, Text, UtcTimestamp

Status = Literal["ok", "flagged", "error"]


def _short(max_length: int):
    return Field(default=None, min_length=1, max_length=max_length)


# error codes and prompt versions arrive as 429 or "429"; stored as text
Code = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)] | Annotated[
    StrictInt, Field(ge=0, le=INT_MAX)]


class EventIn(BaseModel):
    """One LLM call as the application reports it; unknown fields are rejected, not dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: Text | None = _short(200)
    ts: UtcTimestamp | None = None
    route: Text = Field(min_length=1, max_length=200)
    env: Text = Field(default="prod", min_length=1, max_length=100)
    model: Text | None = _short(200)
    provider: Text | None = _short(100)
    region: Text | None = _short(100)
    customer_tier: Text | None = _short(100)
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    duration_ms: Amount | None = None
    status: Status = "ok"
    error_code: Code | None = None
    contains_banned: bool = False
    cost_usd: Amount | None = None
    prompt_id: Code | None = None
    prompt_version: Code | None = None
    attempt: Positive = 1
    metadata: JsonObject = Field(default_factory=dict)
    input_excerpt: Text | None = None
    output_excerpt: Text | None = None
