"""The postmortem as plain data: everything measured and done in one incident (no store, no Slack).

`compile_postmortem` (postmortem_data) fills it; `render_markdown` (postmortem_markdown) and the
charts read it; `Postmortem.to_dict()` is its JSON form. Lists are in a stable order, so the same
incident data always give the same value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from llm_incident.controls.values import DEFAULTS as CONTROL_DEFAULTS
from llm_incident.metrics.stats import WindowStats

PHASES = ("baseline", "during", "after")
"""baseline: the span before the start as long as start → end; during: start → first mitigation
(or → end when nothing was mitigated); after: first mitigation → end."""


@dataclass(frozen=True)
class Phase:
    """One metrics window `[start, end)`."""

    name: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RouteMetrics:
    """One impacted route's stats per phase (None: the phase is empty, e.g. nothing mitigated)."""

    route: str
    baseline: WindowStats | None
    during: WindowStats | None
    after: WindowStats | None

    def phase(self, name: str) -> WindowStats | None:
        return getattr(self, name)


@dataclass(frozen=True)
class ModelUse:
    """Calls of one model/provider pair on a route, in the baseline and during the incident."""

    route: str
    model: str
    provider: str
    baseline_calls: int
    incident_calls: int


@dataclass(frozen=True)
class Decision:
    """One audited control request for the incident: who, when, before → after, what came of it."""

    ts: datetime
    route: str
    env: str
    actor: str
    kind: str  # "change" | "expiry"
    outcome: str  # "applied" | "refused" | "conflict"
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str
    expires_at: datetime | None
    proof: str | None = None  # how the apps applied it ("kill applied by 3/3 instances in 0.4 s")

    @property
    def applied(self) -> bool:
        return self.outcome == "applied"

    @property
    def changed(self) -> list[str]:
        """The fields this request changed (every requested one when none did)."""
        return [k for k in self.after if self.before.get(k) != self.after[k]] or list(self.after)

    @property
    def mitigates(self) -> bool:
        """True for an applied change that put some control away from its default (kill, clamp,
        model or provider switch, retry cap, fallback message): a restore or an expiry only takes
        them back, so it never counts as a mitigation."""
        return (self.applied and self.kind == "change"
                and any(self.after[k] != CONTROL_DEFAULTS.get(k) for k in self.changed
                        if k in CONTROL_DEFAULTS))


@dataclass(frozen=True)
class Entry:
    """A timeline entry (status update, control, evidence, close…)."""

    ts: datetime
    actor: str
    kind: str
    text: str


@dataclass(frozen=True)
class ChangeRow:
    """A deploy / prompt / model change from the change log."""

    ts: datetime
    route: str
    kind: str
    description: str
    ref: str | None
    author: str | None


@dataclass(frozen=True)
class EvidenceRow:
    """An attached event with its label and note; event fields None when the event is gone."""

    event_id: str
    label: str | None
    note: str | None
    labelled_by: str
    route: str | None
    model: str | None
    status: str | None
    tokens_out: int | None
    duration_ms: float | None
    excerpt: str | None = None  # the output excerpt, redacted and cut to a table cell


@dataclass(frozen=True)
class EvidenceCounts:
    attached: int
    good: int
    bad: int

    @property
    def unlabelled(self) -> int:
        return self.attached - self.good - self.bad


@dataclass(frozen=True)
class PromptUse:
    """Calls of one prompt version on a route, in the baseline and during the incident."""

    route: str
    prompt_id: str
    prompt_version: str
    baseline_calls: int
    incident_calls: int


@dataclass(frozen=True)
class Spend:
    """What a route cost during the incident against its baseline rate (USD, priced calls)."""

    route: str
    baseline_usd: float
    baseline_seconds: float
    incident_usd: float
    incident_seconds: float

    @property
    def expected_usd(self) -> float:
        """The baseline's cost per second × the incident's length."""
        if self.baseline_seconds <= 0:
            return 0.0
        return self.baseline_usd / self.baseline_seconds * self.incident_seconds

    @property
    def extra_usd(self) -> float:
        return self.incident_usd - self.expected_usd


@dataclass(frozen=True)
class Culprit:
    """What the triage attributed the incident to: the likely cause's change and the value the
    attribution names (e.g. prompt_version 42 of prompt support.main)."""

    route: str
    kind: str  # the change's kind: prompt | model | deploy | config | …; "" without a change
    ref: str | None
    description: str
    ts: datetime | None
    dimension: str | None = None  # the attribution's, e.g. "prompt_version"
    value: str | None = None
    prompt_id: str | None = None

    @property
    def name(self) -> str:
        """`prompt support.main v42`, `model gpt-4o`, `deploy 2.3.1` — what to fix."""
        if self.dimension == "prompt_version" and self.value:
            version = self.value if self.value[:1] in "vV" else f"v{self.value}"
            return f"prompt {self.prompt_id} {version}" if self.prompt_id else f"prompt {version}"
        if self.dimension in ("model", "provider", "prompt_id") and self.value:
            return f"{self.dimension.replace('_id', '')} {self.value}"
        return f"{self.kind or 'change'} {self.ref or self.description}".strip()


@dataclass(frozen=True)
class ActiveMitigation:
    """A control still differing from its default on a route (in `env`)."""

    route: str
    env: str
    description: str
    max_tokens: int | None = None


@dataclass
class Postmortem:
    """Everything measured and done in one incident; `as_of` is the close (or `now` for a draft)."""

    number: int
    symptom: str
    incident_class: str
    severity: str
    status: str
    commander: str
    routes: list[str]
    envs: list[str]
    customer_tiers: list[str]
    started_at: datetime
    closed_at: datetime | None
    as_of: datetime
    first_mitigation_at: datetime | None
    summary: str | None
    onset_at: datetime | None = None  # when it began (detected or given); None: at declaration
    onset_source: str | None = None
    triage: str | None = None  # what the triage said at the start
    phases: list[Phase] = field(default_factory=list)
    metrics: list[RouteMetrics] = field(default_factory=list)
    usage: list[ModelUse] = field(default_factory=list)
    changes_before: list[ChangeRow] = field(default_factory=list)
    changes_during: list[ChangeRow] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    status_updates: list[Entry] = field(default_factory=list)
    timeline: list[Entry] = field(default_factory=list)
    evidence: list[EvidenceRow] = field(default_factory=list)
    evidence_counts: EvidenceCounts = field(default_factory=lambda: EvidenceCounts(0, 0, 0))
    still_active: list[ActiveMitigation] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)
    human_follow_ups: list[str] = field(default_factory=list)
    change_lookback: timedelta = timedelta(hours=24)
    prompt_mix: list[PromptUse] = field(default_factory=list)
    spend: list[Spend] = field(default_factory=list)
    culprit: Culprit | None = None
    frozen: bool = False  # read from what was stored at the close (never recompiled)
    after_close: list[str] = field(default_factory=list)  # what happened since: a note, no rewrite

    @property
    def draft(self) -> bool:
        """True while the incident is open: the numbers run up to `as_of`."""
        return self.closed_at is None

    @property
    def began_at(self) -> datetime:
        """When the incident began: its onset, else its declaration."""
        if self.onset_at is None:
            return self.started_at
        return min(_aware(self.onset_at), _aware(self.started_at))

    @property
    def detection_lag(self) -> timedelta | None:
        """Onset → declaration; None without an onset."""
        return None if self.onset_at is None else _aware(self.started_at) - self.began_at

    @property
    def duration(self) -> timedelta:
        return _aware(self.as_of) - self.began_at

    @property
    def time_to_mitigate(self) -> timedelta | None:
        """From the onset (else the declaration) to the first mitigation."""
        if self.first_mitigation_at is None:
            return None
        return _aware(self.first_mitigation_at) - self.began_at

    @property
    def mitigations(self) -> list[Decision]:
        """The control changes applied for the incident (restores and expiries included), oldest
        first."""
        return [d for d in self.decisions if d.applied]

    @property
    def evidence_more(self) -> int:
        """Attached events not listed in `evidence`."""
        return max(0, self.evidence_counts.attached - len(self.evidence))

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes in ISO 8601, spans in seconds, stats as `WindowStats.to_dict()`."""
        data = _jsonable(self)
        data.update(draft=self.draft, duration_s=self.duration.total_seconds(),
                    time_to_mitigate_s=(None if self.time_to_mitigate is None
                                        else self.time_to_mitigate.total_seconds()),
                    detection_lag_s=(None if self.detection_lag is None
                                     else self.detection_lag.total_seconds()),
                    evidence_more=self.evidence_more)
        return data


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, WindowStats):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class ChartPoint:
    """One bucket `[ts, end)` of a route: calls and the three charted stats (`end` None: the
    series' bucket width after `ts`)."""

    ts: datetime
    calls: int
    p95_tokens_out: int | None
    p95_duration_ms: float | None
    flagged_rate: float | None
    end: datetime | None = None


@dataclass(frozen=True)
class ChartSeries:
    route: str
    start: datetime
    end: datetime
    bucket: timedelta
    points: list[ChartPoint]


@dataclass(frozen=True)
class Marker:
    """A vertical line on a chart: the start, each mitigation, the close."""

    ts: datetime
    label: str
    kind: str  # "start" | "mitigation" | "close"
