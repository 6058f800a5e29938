"""Alert rules: what to watch on which routes, and at which levels; loaded from TOML or YAML.

A rule file (`LLM_INCIDENT_ALERT_RULES`, `.toml`, `.yaml` or `.yml`) holds `defaults` (true:
keep the built-in rules below, the default; false: only the file's) and a list `rules`. A file rule
with the id of a built-in one replaces it. Fields of a rule:

- `id` (unique), `route` (a route name, or `"*"`: every route with traffic in the window),
  `metric` (see METRICS; `error_code_rate` also needs `error_code`, e.g. "429"; `calls_per_min`
  with `compare = "drop"` watches for silent routes), `window` ("15m"),
- `compare`: `ratio` (now ÷ baseline), `absolute` (the value itself) or `drop` (baseline ÷ now:
  traffic that fell or stopped),
- `baseline`: where the baseline chain starts — `week` (the default: the same window a week ago,
  else a day ago, else the `trailing` span before the window), `day` (day, then trailing),
  `trailing` (only the trailing span) or `previous` (the equal-length window just before, alone);
  the first with `min_calls` calls is used. `trailing` ("3h") and `learn` ("1h": the least
  history a trailing baseline needs; before that the rule is `learning`),
- `warning`, `critical` (levels, critical ≥ warning), `floor` (ratio rules: the value must also be
  at least this to alert, so 0.1 % → 0.3 % is not news), `min_calls` (calls a window's own
  value, a baseline and the detector's before need; a quieter window is only searched for a
  shift; fewer in the baseline, or a firing rule's window: no judgement, the state is kept),
  `min_after` (calls the shift detector needs after an onset; fewer in the window: not judged), optional `filter` (the filter language), `cooldown` ("30m": after a
  notification, another one for the same rule and route waits this long, unless it is a change
  to critical).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llm_incident.incidents.models import IncidentClass
from llm_incident.metrics.compare import fmt
from llm_incident.metrics.filters import FilterError, parse_filter
from llm_incident.metrics.stats import WindowStats
from llm_incident.metrics.windows import WindowError, parse_span

ALL_ROUTES = "*"


class RuleError(ValueError):
    """A rule file or rule that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class Metric:
    """A number an alert watches: how to read it from window stats, how to show it."""

    label: str
    kind: str  # number format for metrics.compare.fmt: rate, ms, count, usd
    incident_class: IncidentClass
    read: Callable[[WindowStats, "AlertRule"], float | None]


def _cost_per_hour(stats: WindowStats, _rule: AlertRule) -> float | None:
    if not stats.priced_calls:
        return None
    return stats.total_cost_usd / ((stats.end - stats.start).total_seconds() / 3600)


def _code_rate(stats: WindowStats, rule: AlertRule) -> float | None:
    if not stats.calls:
        return None
    return stats.error_codes.get(str(rule.error_code), 0) / stats.calls


def _calls_per_min(stats: WindowStats, _rule: AlertRule) -> float | None:
    minutes = (stats.end - stats.start).total_seconds() / 60
    return stats.calls / minutes if minutes > 0 else None


METRICS: dict[str, Metric] = {
    "flagged_rate": Metric("flagged rate", "rate", IncidentClass.quality,
                           lambda s, _r: s.flagged_rate),
    "p95_tokens_out": Metric("p95 tokens_out", "count", IncidentClass.cost,
                             lambda s, _r: s.p95_tokens_out),
    "p95_duration_ms": Metric("p95 duration", "ms", IncidentClass.latency,
                              lambda s, _r: s.p95_duration_ms),
    "cost_per_hour": Metric("cost per hour", "usd", IncidentClass.cost, _cost_per_hour),
    "error_rate": Metric("error rate", "rate", IncidentClass.provider,
                         lambda s, _r: s.error_rate),
    "error_code_rate": Metric("error rate of code", "rate", IncidentClass.provider, _code_rate),
    "calls_per_min": Metric("calls per minute", "count", IncidentClass.unknown, _calls_per_min),
}
CHAIN_KINDS = ("week", "day", "trailing", "previous")


class AlertRule(BaseModel):
    """One rule; see the module docstring for the meaning of each field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    route: str = ALL_ROUTES
    metric: Literal["flagged_rate", "p95_tokens_out", "p95_duration_ms", "cost_per_hour",
                    "error_rate", "error_code_rate", "calls_per_min"]
    error_code: str | None = None
    window: str = "15m"
    compare: Literal["ratio", "absolute", "drop"] = "ratio"
    baseline: str = "week"
    trailing: str = "3h"
    learn: str = "1h"
    warning: float = Field(gt=0)
    critical: float = Field(gt=0)
    floor: float = Field(default=0.0, ge=0)
    min_calls: int = Field(default=50, ge=1)
    min_after: int = Field(default=20, ge=5)
    filter: str | None = None
    cooldown: str = "30m"

    @field_validator("window", "cooldown", "trailing", "learn")
    @classmethod
    def _span(cls, value: str) -> str:
        try:
            parse_span(value)
        except WindowError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("error_code", mode="before")
    @classmethod
    def _code_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        if value not in CHAIN_KINDS:
            raise ValueError(f"must be one of {', '.join(CHAIN_KINDS)}")
        return value

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            try:
                parse_filter(value)
            except FilterError as exc:
                raise ValueError(f"bad filter at {exc}") from None
            return value
        return None

    @model_validator(mode="after")
    def _levels(self) -> AlertRule:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical:g}) is below warning ({self.warning:g})")
        if self.metric == "error_code_rate" and not self.error_code:
            raise ValueError("metric error_code_rate needs error_code (e.g. \"429\")")
        if (self.compare == "drop") != (self.metric == "calls_per_min"):
            raise ValueError("compare = \"drop\" goes with metric calls_per_min (and only it)")
        return self

    @property
    def window_span(self) -> timedelta:
        return parse_span(self.window)

    @property
    def cooldown_span(self) -> timedelta:
        return parse_span(self.cooldown)

    @property
    def trailing_span(self) -> timedelta:
        return parse_span(self.trailing)

    @property
    def learn_span(self) -> timedelta:
        return parse_span(self.learn)

    @property
    def uses_baseline(self) -> bool:
        return self.compare != "absolute"

    @property
    def watched(self) -> Metric:
        return METRICS[self.metric]

    def label(self) -> str:
        """The metric as a responder reads it, e.g. "error rate of code 429"."""
        if self.metric == "error_code_rate":
            return f"{self.watched.label} {self.error_code}"
        return self.watched.label

    def describe(self) -> str:
        """One line: "flagged rate over 15m ≥ 2× day baseline (warning), ≥ 4× (critical)"."""
        route = "every route" if self.route == ALL_ROUTES else f"`{self.route}`"
        chain = {"week": "week → day → trailing", "day": "day → trailing",
                  "trailing": "trailing", "previous": "previous"}[self.baseline]
        if self.compare == "ratio":
            levels = f"≥ {self.warning:g}× / {self.critical:g}× the baseline ({chain})"
        elif self.compare == "drop":
            levels = (f"≤ 1/{self.warning:g} / 1/{self.critical:g} of the baseline ({chain}), "
                      f"or stopped")
        else:
            kind = self.watched.kind
            levels = f"≥ {fmt(self.warning, kind)} / {fmt(self.critical, kind)}"
        extra = f", filter `{self.filter}`" if self.filter else ""
        return (f"{self.label()} over {self.window} on {route}: warning/critical {levels}, "
                f"min {self.min_calls} calls{extra}")


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(id="flagged-rate", metric="flagged_rate", warning=1.5, critical=3, floor=0.02),
    # p95 rules confirm from 10 calls after the onset (a rank test sees a ×8 explosion in 8
    # calls; at 4 calls/min 20 would wait 5 minutes); rates need more
    AlertRule(id="p95-tokens-out", metric="p95_tokens_out", warning=1.5, critical=3,
              min_after=10),
    AlertRule(id="p95-duration", metric="p95_duration_ms", warning=1.5, critical=3,
              min_after=10),
    AlertRule(id="cost-per-hour", metric="cost_per_hour", warning=1.5, critical=4, window="1h"),
    AlertRule(id="error-rate", metric="error_rate", compare="absolute", warning=0.05,
              critical=0.20),
    AlertRule(id="rate-limited", metric="error_code_rate", error_code="429",
              compare="absolute", warning=0.02, critical=0.10),
    AlertRule(id="silent-route", metric="calls_per_min", compare="drop", warning=4, critical=20,
              window="10m", min_calls=30),
)


def parse_rules(data: Any, *, source: str = "rules") -> tuple[AlertRule, ...]:
    """Rules from a decoded file (`{"defaults": bool, "rules": [...]}`), defaults merged in."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RuleError(f"{source}: expected a table/mapping with `rules` (and `defaults`)")
    unknown = sorted(set(data) - {"defaults", "rules"})
    if unknown:
        raise RuleError(f"{source}: unknown key(s) {', '.join(unknown)}; expected defaults, rules")
    keep_defaults = data.get("defaults", True)
    if not isinstance(keep_defaults, bool):
        raise RuleError(f"{source}: `defaults` must be true or false")
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise RuleError(f"{source}: `rules` must be a list")
    parsed: list[AlertRule] = []
    for index, item in enumerate(items):
        name = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
        try:
            parsed.append(AlertRule.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: "
                f"{err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors())
            raise RuleError(f"{source}: rule {name}: {problems}") from None
    ids = [rule.id for rule in parsed]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise RuleError(f"{source}: rule id(s) used twice: {', '.join(repeated)}")
    base = [r for r in DEFAULT_RULES if r.id not in ids] if keep_defaults else []
    return (*base, *parsed)


def load_rules(path: str | Path | None) -> tuple[AlertRule, ...]:
    """The built-in rules, or those of the file at `path` (merged as `parse_rules` says)."""
    if path is None:
        return DEFAULT_RULES
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise RuleError(f"cannot read alert rules {file}: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            raise RuleError(f"alert rules {file}: use a .toml, .yaml/.yml or .json file")
    except RuleError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser's own error, shown as one line
        raise RuleError(f"alert rules {file} are not valid {suffix[1:]}: {exc}") from None
    return parse_rules(data, source=str(file))
