"""What the HTTP API answers, as pydantic models: they document the answers in the OpenAPI document
(`responses=`); handlers still build plain dicts, and the conformance test holds them to these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from llm_incident.api.docs import inline_schema, request_body
from llm_incident.bounds import Amount, Count, Positive, Text, UtcTimestamp
from llm_incident.controls.values import FIELDS, MAX_FALLBACK_CHARS, MAX_NAME_CHARS, MAX_TOKENS_RANGE, RETRY_CAP_RANGE
from llm_incident.events.schema import EventIn
from llm_incident.metrics.breakdowns import ErrorGroup, ModelLatency, ModelShare, PromptCost, RouteVolume
from llm_incident.metrics.stats import WindowStats


class FieldError(BaseModel):
    field: str
    message: str


class RejectedEvent(BaseModel):
    index: int
    event_id: str | None
    errors: list[FieldError]


class IngestAnswer(BaseModel):
    """`POST /v1/events`: 200 even when some events are rejected; valid ones are stored."""

    accepted: int
    duplicates: int
    unpriced: int
    rejected: list[RejectedEvent]


class EventsBatch(BaseModel):
    events: list[EventIn]


def events_body(max_events: int) -> dict[str, Any]:
    """The `POST /v1/events` request body (read raw for speed and gzip): a batch or a bare array."""
    item = {"anyOf": [inline_schema(EventIn), {"description": "anything else is rejected on its own, "
                                                   "in the answer's `rejected`"}]}
    array = {"type": "array", "items": item, "description": f"at most {max_events:,} events by default "
             "(LLM_INCIDENT_MAX_BATCH_EVENTS); more is 413"}
    batch = {"type": "object", "properties": {"events": array}, "required": ["events"],
             "additionalProperties": False}
    return request_body({"anyOf": [batch, array]})


class ChangeAnswer(BaseModel):
    id: int
    route: str
    kind: str
    description: str
    ref: str | None
    author: str | None
    ts: AwareDatetime


class ChangesAnswer(BaseModel):
    changes: list[ChangeAnswer]


class EventOut(BaseModel):
    """An event as stored: every ingest field, with `cost_usd` computed and `priced` saying so."""

    event_id: str
    ts: AwareDatetime
    received_at: AwareDatetime
    route: str
    env: str
    model: str | None
    provider: str | None
    region: str | None
    customer_tier: str | None
    tokens_in: int | None
    tokens_out: int | None
    duration_ms: float | None
    status: Literal["ok", "flagged", "error"]
    error_code: str | None
    contains_banned: bool
    cost_usd: float | None
    priced: bool
    prompt_id: str | None
    prompt_version: str | None
    attempt: int
    metadata: dict[str, Any]
    input_excerpt: str | None
    output_excerpt: str | None


class EventsPage(BaseModel):
    """One page of `GET /v1/events`; `next` is the cursor of the following page (null: no more)."""

    events: list[EventOut]
    count: int
    limit: int = Field(description="the page size applied")
    capped: bool = Field(description="true when the requested limit was above the maximum")
    next: str | None = Field(description="pass as `cursor=` for the next page; null when this is the last")


class ControlsOut(BaseModel):
    route: str
    env: str
    enabled: bool
    max_tokens: int | None
    model: str | None
    provider: str | None
    retry_cap: int | None
    fallback_message: str | None
    version: int
    updated_at: AwareDatetime | None
    updated_by: str | None
    expires_at: AwareDatetime | None


class ControlsChange(BaseModel):
    """`PUT /v1/routes/{route}/controls`: the controls to change (null clears an override) and how."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": [name]} for name in FIELDS],  # at least one control
        "not": {"required": ["expires_at", "expires_in"]},  # one way to say when it reverts
    })

    enabled: bool | None = None
    max_tokens: int | None = Field(None, ge=MAX_TOKENS_RANGE[0], le=MAX_TOKENS_RANGE[1])
    model: Text | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    provider: Text | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    retry_cap: int | None = Field(None, ge=RETRY_CAP_RANGE[0], le=RETRY_CAP_RANGE[1])
    fallback_message: Text | None = Field(None, max_length=MAX_FALLBACK_CHARS)
    expected_version: Count | None = Field(None, description="compare-and-set: 409 unless current")
    reason: Text | None = None
    on_behalf_of: Text | None = Field(
        None, min_length=1, max_length=MAX_NAME_CHARS // 2,
        description="who the caller acts for; recorded as `key:NAME on behalf of WHO`, never as that person")
    actor: Text | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS // 2,
                               description="deprecated alias of `on_behalf_of`")
    incident: Positive | None = Field(None, description="an existing incident number (400 otherwise)")
    expires_in: Amount | None = Field(None, gt=0, description="seconds until the change reverts")
    expires_at: UtcTimestamp | None = None
    env: Text | None = Field(None, min_length=1, max_length=100)


class ControlsChanged(BaseModel):
    controls: ControlsOut
    outcome: Literal["applied", "unchanged", "refused"]
    warnings: list[str]
    change_id: int | None


class ControlsConflict(BaseModel):
    error: str
    controls: ControlsOut
    outcome: Literal["conflict"]
    warnings: list[str]
    change_id: int | None


class Span(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


class WindowInfo(Span):
    minutes: float
    span: str


class BaselineInfo(Span):
    kind: str


class DeltaOut(BaseModel):
    now: float | None
    baseline: float | None
    abs: float | None
    rel: float | None
    verdict: str


class MetricsAnswer(BaseModel):
    route: str | None
    window: WindowInfo
    baseline: BaselineInfo
    scope: dict[str, Any]
    now: WindowStats
    baseline_stats: WindowStats
    deltas: dict[str, DeltaOut]
    summary: list[str]
    percentiles: Literal["nearest-rank"]
    warnings: list[str] = Field(description="e.g. the route has never sent an event")


class BreakdownsAnswer(BaseModel):
    route: str | None
    window: Span
    baseline: BaselineInfo
    scope: dict[str, Any]
    p95_duration_by_model: list[ModelLatency]
    volume_by_route: list[RouteVolume]
    model_mix: list[ModelShare]
    errors_by_model_region: list[ErrorGroup]
    top_prompts: list[PromptCost]
    percentiles: Literal["nearest-rank"]
    warnings: list[str]


class EvidenceCountsOut(BaseModel):
    attached: int
    good: int
    bad: int


class EvidenceRowOut(BaseModel):
    incident: int
    event_id: str
    label: str | None
    note: str | None
    labelled_by: str | None
    attached_at: AwareDatetime
    labelled_at: AwareDatetime


class EvidenceAnswer(BaseModel):
    incident: int
    counts: EvidenceCountsOut
    evidence: list[EvidenceRowOut] = Field(description="rows with every event field too (null when unknown)")


class PostmortemData(BaseModel):
    """The postmortem's data (`format=json`); the Markdown is rendered from exactly this."""

    number: int
    symptom: str
    status: str
    routes: list[str]
    started_at: AwareDatetime
    closed_at: AwareDatetime | None
    draft: bool


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
    scheduler: Any


class HealthDown(BaseModel):
    status: Literal["error"]
    database: str
