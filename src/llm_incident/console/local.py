"""Console-only commands — `help` without the Slack prefix, `postmortem [N]`, `export [N] …` —
and `local_text`, which writes the core's `/llm-incident …` hints as the console takes them."""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from llm_incident.commands.verbs import VERBS
from llm_incident.db import Database
from llm_incident.incidents.models import Incident

SLACK_PREFIX = "/llm-incident "
CONSOLE_VERBS = {
    "postmortem": ("postmortem [#N]",
                   "print the postmortem (a draft while open) of #N, else of the newest incident"),
    "export": ("export [#N] [jsonl|csv] [FILE]",
               "labelled evidence of #N (else every incident), printed or written to FILE"),
}


def local_text(text: str) -> str:
    """`/llm-incident close` → `close`: in the console commands are typed without the prefix."""
    return text.replace(SLACK_PREFIX, "")


def help_text() -> str:
    lines = ["llm-incident console commands (type them as shown; a number presses that button):"]
    for usage, what in [*VERBS.values(), *CONSOLE_VERBS.values()]:
        lines.append(f"  {usage} — {what}")
    lines.append("  quit (or Ctrl-D) — leave the console")
    lines.append("An incident is the newest open one unless #N names it. Windows: 30m, 1h, 24h, 7d.")
    return "\n".join(lines)


class LocalCommands:
    """What the console answers itself; `run` returns None for anything else (the core's)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def run(self, line: str, now: datetime) -> str | None:
        try:
            words = shlex.split(line)
        except ValueError:
            return None
        if not words:
            return None
        verb, args = words[0].lower(), words[1:]
        if verb == "help" and not args:
            return help_text()
        if verb == "postmortem":
            return self.postmortem(args, now)
        if verb == "export":
            return self.export(args)
        return None

    def _number(self, args: list[str], usage: str) -> tuple[int | None, list[str], str | None]:
        """(#N or None, the other args, an error)."""
        if args and args[0].removeprefix("#").isdigit():
            return int(args[0].removeprefix("#")), args[1:], None
        if args and args[0].startswith("#"):
            return None, args, f"⚠️ {args[0]!r} is not an incident number\nUsage: `{usage}`"
        return None, args, None

    def postmortem(self, args: list[str], now: datetime) -> str:
        from llm_incident.incidents.postmortem import compile_postmortem, render_markdown

        usage = CONSOLE_VERBS["postmortem"][0]
        number, rest, error = self._number(args, usage)
        if error or rest:
            return error or f"⚠️ unexpected {' '.join(rest)!r}\nUsage: `{usage}`"
        with self.db.read() as session:
            if number is None:
                number = session.exec(select(func.max(Incident.number))).one()
                if number is None:
                    return "No incident yet: `start <route> <class> <symptom>` opens one."
            if session.exec(select(Incident).where(Incident.number == number)).first() is None:
                return f"⚠️ there is no incident #{number}"
            return render_markdown(compile_postmortem(session, number, now=now)).rstrip("\n")

    def export(self, args: list[str]) -> str:
        from llm_incident.evidence.export import export_rows, render

        usage = CONSOLE_VERBS["export"][0]
        number, rest, error = self._number(args, usage)
        if error:
            return error
        fmt = "jsonl"
        if rest and rest[0].lower() in ("jsonl", "csv"):
            fmt, rest = rest[0].lower(), rest[1:]
        if len(rest) > 1:
            return f"⚠️ unexpected {' '.join(rest[1:])!r}\nUsage: `{usage}`"
        with self.db.read() as session:
            incident = None
            if number is not None:
                incident = session.exec(select(Incident).where(Incident.number == number)).first()
                if incident is None:
                    return f"⚠️ there is no incident #{number}"
            rows = export_rows(session, incident)
        text = render(rows, fmt)
        if not rest:
            return text.rstrip("\n") if rows else "No labelled evidence yet (`attach` labels events)."
        path = Path(rest[0]).expanduser()
        try:
            path.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            return f"⚠️ could not write {path}: {exc.strerror or exc}"
        return f"wrote {len(rows)} evidence row(s) to {path.resolve()}"
