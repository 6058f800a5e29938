"""The forms the core opens (start an incident, attach to an incident) and reading them back."""

from __future__ import annotations

from llm_incident.commands.replies import FieldKind, Modal, ModalField
from llm_incident.incidents.models import Incident, IncidentClass, Severity


FORM_TEXT_MAX = 3000  # characters a form's text field holds


def prefill_ids(event_ids: list[str], limit: int = FORM_TEXT_MAX) -> tuple[str, int]:
    """As many whole ids as fit in `limit` characters (space separated), and how many did not."""
    kept: list[str] = []
    used = 0
    for event_id in event_ids:
        cost = len(event_id) + (1 if kept else 0)
        if used + cost > limit:
            break
        kept.append(event_id)
        used += cost
    return " ".join(kept), len(event_ids) - len(kept)


def attach_modal(open_incidents: list[Incident], event_ids: list[str], *,
                 channel: str | None) -> Modal:
    options = tuple(f"#{i.number} — {i.symptom[:60] or 'no symptom'}" for i in open_incidents)
    here = next((o for o, i in zip(options, open_incidents)
                 if channel and channel in (i.channel_id, i.origin_channel_id)), options[0])
    ids, left_out = prefill_ids(event_ids)
    hint = (f"{left_out} more of the {len(event_ids)} ids in the message did not fit in the "
            f"form ({FORM_TEXT_MAX:,} characters): attach them afterwards with "
            "`/llm-incident attach #N <event_id…>`." if left_out else None)
    return Modal(
        kind="attach", title="Attach to incident", submit="Attach",
        fields=(
            ModalField("incident", "Incident", FieldKind.select, options=options, initial=here),
            ModalField("event_ids", "Event ids (space separated)", FieldKind.long_text,
                       initial=ids, hint=hint),
            ModalField("label", "Label", FieldKind.select, options=("none", "good", "bad"),
                       initial="none"),
            ModalField("note", "Note", FieldKind.long_text, required=False),
        ),
    )


def attach_command(values: dict[str, str | list[str]]) -> str:
    """`attach #N ids [label] [note]` from a submitted attach form."""
    number = as_str(values.get("incident")).split(" ", 1)[0]
    label = as_str(values.get("label"))
    parts = ["attach", number, " ".join(as_str(values.get("event_ids")).split())]
    parts.append(label if label in ("good", "bad") else "none")
    if note := as_str(values.get("note")):
        parts.append(note)
    return " ".join(parts)


def start_modal(routes: list[str]) -> Modal:
    return Modal(
        kind="start",
        title="Start an LLM incident",
        submit="Start",
        fields=(
            ModalField("symptom", "Symptom", FieldKind.long_text,
                       hint="What users see, e.g. 'support.reply answers are 8x longer'"),
            ModalField("incident_class", "Class", FieldKind.select,
                       options=tuple(c.value for c in IncidentClass), initial="unknown"),
            ModalField("routes", "Affected routes", FieldKind.multi_select,
                       options=tuple(routes[:100]), required=False),
            ModalField("envs", "Environments (comma separated)", FieldKind.text, required=False),
            ModalField("customer_tiers", "Customer tiers (comma separated)", FieldKind.text,
                       required=False),
            ModalField("severity", "Severity", FieldKind.select,
                       options=tuple(s.value for s in Severity), initial="sev2"),
            ModalField("since", "Began at (optional)", FieldKind.text, required=False,
                       hint="19:37 (UTC), 30m (ago) or 2026-12-02T19:37Z; empty: detected "
                            "from the data"),
        ),
    )


def as_str(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        return value[0] if value else ""
    return (value or "").strip()


def as_list(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if v]
    return [part.strip() for part in (value or "").split(",") if part.strip()]
