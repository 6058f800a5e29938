"""What the acknowledgement of a typed command says, before the command has run.

The answer itself follows as soon as the command ran; the ack tells the person at once that the
request was taken and what it is about to do ("Killing `support.reply`…"). Pure: parse only.
"""

from __future__ import annotations

from llm_incident.commands.parse import ChangeControl, Close, ParseError, Start, Status, parse_command

CONTROL_ACKS = {
    "kill": "Killing `{route}`…",
    "restore": "Restoring `{route}`…",
    "clamp": "Clamping `{route}` to {value} output tokens…",
    "model": "Switching `{route}` to model `{value}`…",
    "provider": "Switching `{route}` to provider `{value}`…",
    "retries": "Setting the retry cap of `{route}` to {value}…",
}


def ack_text(text: str) -> str | None:
    """A short "doing it" line for commands that change something; None for the others (their
    answer comes right away) and for text that does not parse (the answer says what is wrong)."""
    try:
        command = parse_command(text)
    except ParseError:
        return None
    if isinstance(command, ChangeControl) and not command.form:
        template = CONTROL_ACKS.get(command.verb)
        return template.format(route=command.route, value=command.value) if template else None
    if isinstance(command, Start) and not command.form:
        return "Starting the incident…"
    if isinstance(command, Status):
        return "Posting the status update…"
    if isinstance(command, Close):
        return "Closing the incident…"
    return None
