"""The runbook the incident thread is opened from, and the triage checklist per class.

Headings and steps are the project's runbook (PRODUCT.md); filled from what is known at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_incident.incidents.models import Incident, IncidentClass

RUNBOOK_TITLE = "LLM Incident Runbook"
SUMMARY, TRIAGE, MITIGATION_OPTIONS, EVIDENCE, FOLLOW_UPS = (
    "Summary", "Triage", "Mitigation options", "Evidence", "Follow-ups")
"""The runbook template's section headings, verbatim (the postmortem reuses them)."""
FOLLOW_UP_PROMPTS = ("Permanent fix", "Tests/evals to add", "Guardrails to tighten")
"""What the Follow-ups section asks of humans."""
START_TIME, AFFECTED_ROUTES, AFFECTED_CUSTOMERS = (
    "Start time", "Affected routes", "Affected customers")
RECENT_CHANGE, MODEL_PROVIDER, METRIC_DELTAS = (
    "Recent deploy or prompt change?", "Model/provider changes?",
    "Metrics deltas (baseline vs now)")
"""The runbook's blanks that data can answer (keys of `runbook(answers=…)`)."""


@dataclass(frozen=True)
class RunbookSection:
    heading: str
    lines: tuple[str, ...]


CHECKLISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "quality": ("Quality", (
        "Recent deploys and prompt changes for the route",
        "Flagged rate last 30–60 min vs baseline",
        "Sample 20–30 outputs and label good/bad",
        "Narrow pattern → patch guardrails; broad → shorten context, safer prompt, or disable",
    )),
    "latency": ("Latency", (
        "p95 duration by route + model",
        "Tokens in/out distributions",
        "Retry loops",
        "Reroute to a faster model/provider",
        "Clamp max output tokens",
    )),
    "cost": ("Cost", (
        "Call volume by route",
        "Tokens in/out",
        "Model mix",
        "Budget clamp or smaller model",
        "Top prompts by total cost in the last hour",
    )),
    "provider": ("Provider (429/5xx)", (
        "Error codes and affected regions/models",
        "Backoff + strict retry cap",
        "Fail fast with a clear message",
        "Reroute critical routes to another provider",
        "Keep provider response metadata",
    )),
}

FIRST_TEN_MINUTES = (
    "Confirm the symptom class",
    "Blast radius: routes, envs, customer tiers",
    "Kill switch if impact is high",
    "Retry limits + fast fallback on provider errors",
    "Capture 5–10 example event IDs",
)


def checklists_for(incident_class: str) -> list[tuple[str, tuple[str, ...]]]:
    """The checklist for the class; all four when the class is unknown."""
    if incident_class == IncidentClass.unknown.value or incident_class not in CHECKLISTS:
        return list(CHECKLISTS.values())
    return [CHECKLISTS[incident_class]]


def _or_blank(values: list[str] | tuple[str, ...], blank: str = "_to fill_") -> str:
    return ", ".join(values) if values else blank


def runbook(incident: Incident, *, current_mitigation: str = "none yet",
            answers: dict[str, str] | None = None) -> list[RunbookSection]:
    """The runbook template pre-filled from the incident; `answers` (label → text, e.g. the
    triage's `runbook_fields()`) fill the blanks the data can answer."""
    got = answers or {}
    started = incident.started_at.strftime("%Y-%m-%d %H:%M UTC")
    customers = got.get(AFFECTED_CUSTOMERS) if not incident.customer_tiers else None
    routes = _or_blank(incident.routes)
    if got.get(AFFECTED_ROUTES):  # the named routes stay; the data says what else moved
        routes = (f"{routes} (data: {got[AFFECTED_ROUTES]})" if incident.routes
                  else got[AFFECTED_ROUTES])
    return [
        RunbookSection(SUMMARY, (
            f"Symptom: {incident.symptom or '_to fill_'}",
            f"Start time: {got.get(START_TIME) or started}"
            + (f" (declared {started})" if got.get(START_TIME) else ""),
            f"Affected routes: {routes}",
            f"Affected customers: {customers or _or_blank(incident.customer_tiers)}"
            + (f" (envs: {', '.join(incident.envs)})" if incident.envs else ""),
            f"Current mitigation: {current_mitigation}",
        )),
        RunbookSection(TRIAGE, (
            f"{RECENT_CHANGE} {got.get(RECENT_CHANGE) or '(see the change log below)'}",
            f"{MODEL_PROVIDER} {got.get(MODEL_PROVIDER) or ''}".rstrip(),
            f"{METRIC_DELTAS}: "
            + (got.get(METRIC_DELTAS) or "flagged_rate, p95_duration_ms, p95_tokens_out, "
                                         "cost_per_call"),
        )),
        RunbookSection(MITIGATION_OPTIONS, (
            "Kill switch route", "Clamp max tokens", "Switch model", "Switch provider",
            "Disable retries, set cap",
        )),
        RunbookSection(EVIDENCE, ("Example event IDs", "Labels + notes")),
        RunbookSection(FOLLOW_UPS, FOLLOW_UP_PROMPTS),
    ]
