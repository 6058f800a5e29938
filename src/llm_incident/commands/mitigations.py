"""Route controls from commands: kill, restore, clamp, model, provider, retries, and the panel.

A change is a compare-and-set on the route's control version (buttons carry `@vN`), so a double
click or a retried request is answered, not applied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from llm_incident.commands.parse import ChangeControl
from llm_incident.commands.replies import (
    Actions,
    Button,
    Confirm,
    FieldKind,
    Modal,
    ModalField,
    Note,
    Reply,
    Section,
)
from llm_incident.controls.proof import latest_proof
from llm_incident.controls.service import ChangeResult, get_controls
from llm_incident.controls.values import DEFAULTS, ControlState, describe_active
from llm_incident.events.routes import seen_values
from llm_incident.metrics.windows import parse_span

DURATIONS = ("until restored", "30m", "1h", "2h", "4h", "24h")
ENV = "prod"


def requested_changes(cmd: ChangeControl) -> dict[str, Any]:
    """The control fields a command sets (`off` clears an override)."""
    value = None if cmd.value == "off" else cmd.value
    if cmd.verb == "kill":
        return {"enabled": False}
    if cmd.verb == "restore":
        return dict(DEFAULTS)
    field = {"clamp": "max_tokens", "model": "model", "provider": "provider",
             "retries": "retry_cap"}[cmd.verb]
    return {field: value}


def expiry(cmd: ChangeControl, now: datetime) -> datetime | None:
    return now + parse_span(cmd.duration) if cmd.duration else None


def _until(state: ControlState) -> str:
    return f" (until {state.expires_at:%H:%M} UTC)" if state.expires_at else ""


def describe_change(actor: str, cmd: ChangeControl, result: ChangeResult) -> str:
    """The one line the thread gets: who did what, and what traffic gets now."""
    route, state = f"`{cmd.route}`", result.controls
    who = f"<@{actor}>"
    until = _until(state) if cmd.duration else ""
    if cmd.verb == "kill":
        fallback = state.fallback_message or "the fallback message"
        return f"{who} killed {route}{until} — traffic now gets {fallback!s}"
    if cmd.verb == "restore":
        return f"{who} restored {route} — every control is back to its default"
    value = result.after.get(next(iter(result.after)))
    if value is None:
        what = {"clamp": "token clamp", "model": "model override", "provider": "provider override",
                "retries": "retry cap"}[cmd.verb]
        return f"{who} removed the {what} on {route}"
    if cmd.verb == "clamp":
        return f"{who} clamped {route} to {value:,} output tokens{until}"
    if cmd.verb == "retries":
        fast = " (fail fast)" if value == 0 else ""
        return f"{who} capped retries on {route} at {value}{fast}{until}"
    return f"{who} switched {route} to {cmd.verb} `{value}`{until}"


def active_mitigations(state: ControlState) -> list[str]:
    """Plain words for every control that differs from its default."""
    return describe_active(state)


def mitigations_for(session: Session, routes: list[str]) -> list[str]:
    """"route: mitigations (next expiry)" lines for the summary card."""
    lines = []
    for route in routes:
        state = get_controls(session, route, ENV)
        active = active_mitigations(state)
        if active:
            expiry_note = (f" (next expiry {state.expires_at:%H:%M} UTC)"
                           if state.expires_at else "")
            lines.append(f"{route}: {', '.join(active)}{expiry_note}")
    return lines


def panel(state: ControlState, proof: str | None = None) -> Reply:
    """The mitigation panel of one route: current controls and a button per mitigation; `proof`: how the
    instances applied its latest change (and whether traffic stopped), under the buttons."""
    guard = f"@v{state.version}"
    route = state.route
    on_off = "🟢 serving" if state.enabled else "⛔ killed (answers its fallback message)"
    fields = (
        ("Traffic", on_off),
        ("Max output tokens", f"{state.max_tokens:,}" if state.max_tokens else "not clamped"),
        ("Model", state.model or "app default"),
        ("Provider", state.provider or "app default"),
        ("Retry cap", "app default" if state.retry_cap is None else str(state.retry_cap)),
        ("Next expiry", f"{state.expires_at:%Y-%m-%d %H:%M} UTC" if state.expires_at else "—"),
    )
    if state.enabled:
        switch = Button("Kill route", f"kill {route} {guard}", style="danger",
                        confirm=Confirm("Kill this route?", f"Stop all LLM calls on {route}? "
                                        "Users get the fallback message until it is restored.",
                                        ok="Kill it"))
    else:
        switch = Button("Restore route", f"restore {route} {guard}", style="primary",
                        confirm=Confirm("Restore this route?", f"Send traffic on {route} to the LLM "
                                        "again and clear every mitigation?", ok="Restore"))
    buttons = (
        switch,
        Button("Clamp tokens…", f"clamp {route} {guard}"),
        Button("Switch model…", f"model {route} {guard}"),
        Button("Switch provider…", f"provider {route} {guard}"),
        Button("Retry cap…", f"retries {route} {guard}"),
    )
    if state.enabled and state.values() != DEFAULTS:
        buttons += (Button("Restore all", f"restore {route} {guard}",
                           confirm=Confirm("Restore this route?",
                                           f"Clear every mitigation on {route}?", ok="Restore")),)
    updated = (f"version {state.version}, changed by <@{state.updated_by}> at "
               f"{state.updated_at:%H:%M} UTC" if state.version else "never changed")
    return Reply(text=f"Mitigations for {route}",
                 blocks=(Section(title=f"Mitigations · `{route}`", fields=fields),
                         Actions(buttons), Note(updated), *((Note(proof),) if proof else ())),
                 ephemeral=False)


def panel_with_proof(session: Session, state: ControlState) -> Reply:
    """The panel, with the proof of its latest change when that change was followed (made in an incident)."""
    latest = latest_proof(session, state.route, state.env)
    shown = latest.shown if latest is not None and latest.version == state.version else None
    return panel(state, shown)


def control_form(cmd: ChangeControl, state: ControlState, session: Session,
                 now: datetime) -> Modal:
    """The small form behind Clamp / Switch model / Switch provider / Retry cap."""
    since = now - timedelta(hours=24)
    guard = f"@v{state.version}"
    if cmd.verb in ("model", "provider"):
        current = getattr(state, cmd.verb)
        seen = seen_values(session, cmd.route, cmd.verb, since=since)
        value_fields: tuple[ModalField, ...] = (
            ModalField("choice", f"{cmd.verb.capitalize()} seen on {cmd.route} (24 h)",
                       FieldKind.select, options=tuple(seen) + ("off",), required=False,
                       initial=current if current in seen else None),
            ModalField("value", f"…or another {cmd.verb}", FieldKind.text, required=False,
                       hint=f"current: {current or 'app default'}; `off` removes the override"),
        )
    else:
        current = state.max_tokens if cmd.verb == "clamp" else state.retry_cap
        label = "Max output tokens" if cmd.verb == "clamp" else "Retry cap (0 = fail fast)"
        value_fields = (ModalField("value", label, FieldKind.text,
                                   initial=None if current is None else str(current),
                                   hint=f"current: {current if current is not None else 'none'}; "
                                        "`off` removes it"),)
    titles = {"clamp": "Clamp tokens", "model": "Switch model", "provider": "Switch provider",
              "retries": "Retry cap"}
    return Modal(
        kind="control", title=f"{titles[cmd.verb]}", submit="Apply",
        context=f"{cmd.verb} {cmd.route} {guard}",
        fields=value_fields + (ModalField("duration", "For how long", FieldKind.select,
                                          options=DURATIONS, initial=DURATIONS[0]),),
    )


def form_command(context: str, values: dict[str, str | list[str]]) -> str | None:
    """Command text from a submitted control form (run through the same path as typed text);
    None when no value was given."""
    verb, route, guard = context.split(" ")
    value = _first(values.get("value")) or _first(values.get("choice"))
    if not value:
        return None
    duration = _first(values.get("duration"))
    text = f"{verb} {route} {value}"
    if duration and duration != DURATIONS[0]:
        text += f" for {duration}"
    return f"{text} {guard}"


def _first(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        return value[0].strip() if value else ""
    return (value or "").strip()


Permission = Callable[[str], bool]
