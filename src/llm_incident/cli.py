"""The `llm-incident` command line: serve, demo, shell, db, keys, alerts, export-labels, postmortem."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from llm_incident import __version__
from llm_incident.settings import Settings, SettingsError, load_settings


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        click.echo(f"llm-incident: {exc}", err=True)
        sys.exit(2)


def _database(settings: Settings):
    from llm_incident.db import Database

    return Database(settings.database_url)


def _upgrade(settings: Settings):
    from llm_incident.migrate import current_revision, upgrade

    db = _database(settings)
    try:
        upgrade(db)
    except Exception as exc:  # noqa: BLE001 - report, don't dump a traceback on the operator
        click.echo(f"llm-incident: database upgrade failed for {settings.database_url}: {exc}", err=True)
        sys.exit(1)
    return db, current_revision(db)


def _run_server(app, host: str, port: int) -> None:
    import uvicorn

    from llm_incident.api.timeouts import timed_h11

    settings = app.state.services.settings  # slow or incomplete requests get 408 (README: request limits)
    http = timed_h11(settings.header_timeout_seconds, settings.body_timeout_seconds)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True, http=http,
                timeout_graceful_shutdown=5)  # long-polls (controls ?wait=) end at shutdown


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-incident")
def main() -> None:
    """llm-incident: a Slack bot and service for on-call engineers when an LLM feature misbehaves.

    Configuration comes from the environment or a .env file (see README: SLACK_BOT_TOKEN,
    LLM_INCIDENT_DATABASE_URL, LLM_INCIDENT_API_KEYS, ...).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
def serve(host: str, port: int) -> None:
    """Upgrade the database, then serve the HTTP API (/v1/…, /healthz, /metrics), Slack
    (POST /slack/events, or Socket Mode with SLACK_APP_TOKEN) and the scheduler (alerts,
    reminders, mitigation expiry; with PostgreSQL one replica leads) on one server."""
    from llm_incident.app import create_app

    from llm_incident.alerts.rules import RuleError

    settings = _settings()
    db, revision = _upgrade(settings)
    click.echo(f"database {db.backend} at revision {revision}")
    try:
        app = create_app(settings, database=db)
    except RuleError as exc:
        click.echo(f"llm-incident: {exc}", err=True)
        sys.exit(2)
    _run_server(app, host, port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--scenario",
    type=click.Choice(["token-explosion", "latency-spike", "provider-429", "quality-regression"]),
    default="token-explosion",
    show_default=True,
    help="The incident playing out in the seeded traffic.",
)
@click.option("--db", "db_path", default="llm_incident_demo.db", show_default=True,
              type=click.Path(dir_okay=False), help="SQLite file (recreated on each run).")
@click.option("--no-serve", is_flag=True, help="Seed and print the banner, then exit.")
@click.option("--no-console", is_flag=True,
              help="Serve only; by default the local console runs in the foreground.")
def demo(host: str, port: int, scenario: str, db_path: str, no_serve: bool,
         no_console: bool) -> None:
    """Seed ~3 hours of synthetic traffic with a live incident into SQLite, then serve it.

    The local console (the same commands as /llm-incident in Slack) runs in the foreground
    while the server runs in the background; leave the console (Ctrl-D) to stop both.
    """
    from llm_incident.apikeys import create_key
    from llm_incident.app import create_app
    from llm_incident.demo import SCENARIOS, seed_demo

    path = Path(db_path).resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    settings = _settings(database_url=f"sqlite:///{path}")
    db, _ = _upgrade(settings)
    now = _now()
    with db.write() as session:
        count = seed_demo(session, scenario, now=now)
        _, key = create_key(session, "demo", now=now)
    base = f"http://{host}:{port}"
    click.echo(
        "\n".join([
            "",
            "llm-incident demo",
            f"  scenario : {scenario} — {SCENARIOS[scenario]}",
            f"  database : {path} ({count} events over the last 3 hours)",
            f"  API key  : {key}",
            "",
            f"  health   : {base}/healthz",
            f"  metrics  : {base}/metrics",
            f"  API docs : {base}/docs",
            "",
            "Next steps:",
            f"  curl -H 'Authorization: Bearer {key}' '{base}/v1/changes?route=support.reply'",
            f"  curl -H 'Authorization: Bearer {key}' -d '[{{\"route\": \"support.reply\"}}]' {base}/v1/events",
            "  in the console below: start support.reply cost tokens exploding · metrics support.reply",
            "",
        ])
    )
    if no_serve:
        return
    app = create_app(settings, database=db)
    if no_console or not sys.stdin.isatty():
        _run_server(app, host, port)
        return
    _serve_in_background(app, host, port)
    _console(db, None, settings)


def _serve_in_background(app, host: str, port: int) -> None:
    """Serve in a thread; return once it listens (so the URLs in the banner answer)."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="llm-incident-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            click.echo(f"llm-incident: the server did not start on {host}:{port} "
                       "(port in use? see the log above)", err=True)
            sys.exit(1)
        time.sleep(0.05)


def _console(database, user: str | None, settings: Settings) -> None:
    from llm_incident.alerts.rules import RuleError, load_rules
    from llm_incident.commands.alerting import AlertConfig
    from llm_incident.console.alerts import ConsoleAlerts
    from llm_incident.console.shell import Shell, console_permission
    from llm_incident.scheduler.setup import job_context
    from llm_incident.slack.outbox import SlackDelivery

    try:
        alerts = AlertConfig(rules=load_rules(settings.alert_rules),
                             channel=settings.alert_channel,
                             interval_seconds=settings.alert_interval_seconds)
        jc = job_context(settings, database)
    except RuleError as exc:
        click.echo(f"llm-incident: {exc}", err=True)
        sys.exit(2)

    try:
        import readline  # noqa: F401 - line editing and history for input()
    except ImportError:  # pragma: no cover - not on every platform
        pass
    if settings.slack_enabled:  # what the console evaluates is posted by the server's outbox
        jc.delivery = SlackDelivery()
    sink = ConsoleAlerts(jc, interval_seconds=settings.alert_interval_seconds)
    Shell(database, user=user, alerts=alerts, can_change=console_permission(settings.responders),
          alert_sink=sink).loop()


@main.command()
@click.option("--user", default=None, help="Who you are in the timeline (default: your login).")
def shell(user: str | None) -> None:
    """The local console: type /llm-incident commands, press buttons by number, no Slack needed."""
    settings = _settings()
    database, _ = _upgrade(settings)
    _console(database, user, settings)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (never drops data)."""
    settings = _settings()
    database, revision = _upgrade(settings)
    click.echo(f"database {database.backend} upgraded to revision {revision}")


@main.group()
def keys() -> None:
    """API keys for /v1 endpoints, each with scopes (ingest, read, controls, admin)."""


@keys.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, default=("ingest", "read"), show_default=True,
              help="ingest, read, controls or admin; repeat or comma-separate for several.")
def keys_create(name: str, scopes: tuple[str, ...]) -> None:
    """Create a key called NAME and print it once (only its hash is stored)."""
    from llm_incident.apikeys import create_key, parse_scopes, scope_text

    try:
        chosen = parse_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    database, _ = _upgrade(_settings())
    with database.write() as session:
        row, plain = create_key(session, name, now=_now(), scopes=chosen)
    click.echo(plain)
    click.echo(f"key #{row.id} '{name}' ({scope_text(chosen)}) created; store it now, it cannot be shown again",
               err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys: id, name, scopes, hint, created, revoked."""
    from llm_incident.apikeys import list_keys

    database, _ = _upgrade(_settings())
    with database.read() as session:
        rows = list_keys(session)
    if not rows:
        click.echo("no keys (LLM_INCIDENT_API_KEYS may still provide some)")
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}Z" if row.revoked_at else "active"
        scopes = row.scope.replace(' ', ',')
        click.echo(f"{row.id}\t{row.name}\t{scopes}\t{row.hint}\t{row.created_at:%Y-%m-%d %H:%M}Z\t{state}")


@keys.command("revoke")
@click.argument("key_id_or_name")
def keys_revoke(key_id_or_name: str) -> None:
    """Revoke the active key(s) with this id or name; takes effect on the next request."""
    from llm_incident.apikeys import revoke_key

    database, _ = _upgrade(_settings())
    with database.write() as session:
        rows = revoke_key(session, key_id_or_name, now=_now())
    if not rows:
        click.echo(f"llm-incident: no active key with id or name {key_id_or_name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {len(rows)} key(s): " + ", ".join(f"#{r.id} {r.name}" for r in rows))


@main.command("export-labels")
@click.option("--incident", "number", type=int, default=None,
              help="Incident number (default: the evidence of every incident).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="JSON Lines, or CSV with metadata as a JSON string.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write (default: standard output).")
def export_labels(number: int | None, fmt: str, output: str | None) -> None:
    """Export labelled evidence (event fields + label, note, labeller) to seed an eval set."""
    from llm_incident.evidence.export import export_rows, render
    from llm_incident.incidents.service import IncidentError, get_incident

    database, _ = _upgrade(_settings())
    with database.read() as session:
        try:
            incident = get_incident(session, number) if number is not None else None
        except IncidentError:
            click.echo(f"llm-incident: there is no incident #{number}", err=True)
            sys.exit(1)
        rows = export_rows(session, incident)
    text = render(rows, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8", newline="")
    click.echo(f"wrote {len(rows)} evidence row(s) to {output}", err=True)


def _incident_number(text: str) -> int:
    """`3` or `#3` → 3; a usage error otherwise."""
    raw = text.strip().removeprefix("#")
    if not raw.isdigit() or int(raw) < 1:
        raise click.BadParameter(f"{text!r} is not an incident number (write 3 or #3)")
    return int(raw)


@main.command()
@click.argument("incident")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the Markdown to this file instead of standard output.")
@click.option("--charts", "charts_dir", type=click.Path(file_okay=False), default=None,
              help="Also write a PNG chart per impacted route into this directory.")
def postmortem(incident: str, output: str | None, charts_dir: str | None) -> None:
    """Print the postmortem of INCIDENT (3 or #3) as Markdown; an open one gives a draft as of now."""
    from llm_incident.incidents.postmortem import compile_postmortem, render_markdown, route_charts
    from llm_incident.incidents.service import IncidentError

    number = _incident_number(incident)
    database, _ = _upgrade(_settings())
    with database.read() as session:
        try:
            pm = compile_postmortem(session, number, now=_now())
        except IncidentError:
            click.echo(f"llm-incident: there is no incident #{number}", err=True)
            sys.exit(1)
        charts = route_charts(session, pm, limit=None) if charts_dir else {}
    text = render_markdown(pm)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8", newline="")
        click.echo(f"wrote the postmortem of incident #{number} to {output}", err=True)
    if charts_dir:
        folder = Path(charts_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for route, png in charts.items():
            path = folder / f"incident-{number}-{_file_part(route)}.png"
            path.write_bytes(png)
            click.echo(f"wrote {path}", err=True)


def _file_part(route: str) -> str:
    """A route name safe as part of a file name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in route) or "route"


@main.group()
def alerts() -> None:
    """Alert rules (LLM_INCIDENT_ALERT_RULES plus the built-in ones) and their evaluation."""


@alerts.command("check")
@click.option("--dry-run", is_flag=True, help="Evaluate and print; store and post nothing.")
@click.option("--all", "show_all", is_flag=True, help="Print every rule × route, not only "
              "those above ok or not judged.")
def alerts_check(dry_run: bool, show_all: bool) -> None:
    """Run one alert evaluation now, as the scheduler does: state changes are stored (and shown by
    `alerts` and the console) and, with LLM_INCIDENT_ALERT_CHANNEL and Slack set, their messages
    queued for Slack (the server's outbox posts them). Levels: ok, pending warning (confirmed by
    the next evaluation), warning, critical, learning (no baseline with enough history yet),
    not judged (too few calls)."""
    from llm_incident.alerts.rules import RuleError
    from llm_incident.cli_alerts import run_check

    settings = _settings()
    database, _ = _upgrade(settings)
    try:
        code = run_check(settings, database, now=_now(), dry_run=dry_run, show_all=show_all,
                         echo=click.echo)
    except RuleError as exc:
        click.echo(f"llm-incident: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)
