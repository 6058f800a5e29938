"""The `llm-incident` command line: serve, demo, shell, db, keys, alerts, export-labels, postmortem."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from llm_incident import __version__
from llm_incident.cli_keys import keys
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


DEMO_DB = "llm_incident_demo.db"
DB_OPTION = click.option(
    "--db", "db_path", default=None, type=click.Path(dir_okay=False),
    help="SQLite file to read (default: LLM_INCIDENT_DATABASE_URL; without it ./llm_incident.db, "
         f"else ./{DEMO_DB} when the demo ran here).")


def _reading(db_path: str | None):
    """The database a read-only command (postmortem, export-labels) reads: `--db`, else the
    configured one, else the demo's beside it. A SQLite file that is not there is an error, not
    a new empty database."""
    from sqlalchemy.engine import make_url

    if db_path is not None:
        settings = _settings(database_url=f"sqlite:///{Path(db_path).resolve()}")
    else:
        settings = _settings()
        default = Settings.model_fields["database_url"].default
        if (settings.database_url == default and not Path("llm_incident.db").exists()
                and Path(DEMO_DB).exists()):
            demo_file = Path(DEMO_DB).resolve()
            click.echo(f"llm-incident: reading the demo database {demo_file} (--db chooses "
                       "another)", err=True)
            settings = _settings(database_url=f"sqlite:///{demo_file}")
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            click.echo(f"llm-incident: there is no database at {url.database} (give --db FILE, "
                       "set LLM_INCIDENT_DATABASE_URL, or run `llm-incident demo` here)", err=True)
            sys.exit(1)
    database, _ = _upgrade(settings)
    return database


def _run_server(app, host: str, port: int) -> None:
    import uvicorn

    from llm_incident.api.timeouts import timed_h11
    from llm_incident.runtime import tune_gc

    settings = app.state.services.settings  # slow/incomplete requests: 408 (docs/http-api.md)
    http = timed_h11(settings.header_timeout_seconds, settings.body_timeout_seconds)
    tune_gc()
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True, http=http,
                timeout_graceful_shutdown=5)  # long-polls (controls ?wait=) end at shutdown


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-incident")
def main() -> None:
    """llm-incident: a Slack bot and service for on-call engineers when an LLM feature misbehaves.

    Configuration comes from the environment or a .env file (docs/configuration.md: SLACK_BOT_TOKEN,
    LLM_INCIDENT_DATABASE_URL, LLM_INCIDENT_API_KEYS, ...).
    """
    from llm_incident.console.runtime import LOG_FORMAT

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
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
@click.option("--db", "db_path", default=DEMO_DB, show_default=True,
              type=click.Path(dir_okay=False), help="SQLite file (recreated on each run).")
@click.option("--speed", type=click.FloatRange(1, 120), default=1.0, show_default=True,
              help="Run the demo's clock N times as fast (10: the 5-minute mitigation check "
                   "comes after 30 s).")
@click.option("--no-serve", is_flag=True, help="Seed and print the banner, then exit.")
@click.option("--no-console", is_flag=True,
              help="Serve only; by default the local console runs in the foreground.")
def demo(host: str, port: int, scenario: str, db_path: str, speed: float, no_serve: bool,
         no_console: bool) -> None:
    """Seed ~3 hours of synthetic traffic with a live incident into SQLite, then serve it while
    a simulated LLM app (on the llm_incident_client SDK) keeps calling the routes and obeys
    their controls.

    The local console (the same commands as /llm-incident in Slack) runs in the foreground
    while the server runs in the background; alerts and the scheduler's posts print in it as
    they come; the service's log goes to a file beside the database. Leave the console
    (Ctrl-D) to stop everything.
    """
    from llm_incident.apikeys import create_key
    from llm_incident.app import create_app
    from llm_incident.demo import seed_demo
    from llm_incident.demo.banner import banner
    from llm_incident.demo.clock import DemoClock
    from llm_incident.console.runtime import feed_console, log_to_file
    from llm_incident.demo.live import SimulatedApp

    path = Path(db_path).resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    settings = _settings(database_url=f"sqlite:///{path}")
    db, _ = _upgrade(settings)
    now = _now()
    with db.write() as session:
        count = seed_demo(session, scenario, now=now)
        _, key = create_key(session, "demo", now=now)
    mode = ("seed" if no_serve else
            "serve" if no_console or not sys.stdin.isatty() else "console")
    log_file = path.with_suffix(".log")
    base = f"http://{host}:{port}"
    click.echo(banner(scenario=scenario, mode=mode, db_file=path, events=count, key=key,
                      base=base, speed=speed, log_file=log_file))
    if mode == "seed":
        return
    if mode == "console":
        log_to_file(log_file)
    clock = DemoClock(now, speed)
    app = create_app(settings, database=db, clock=clock, time_scale=speed)
    app.state.lifecycle.append(SimulatedApp(scenario, clock, url=base, api_key=key))
    if mode == "serve":
        _run_server(app, host, port)
        return
    feed = feed_console(app.state.scheduler.jc) if app.state.scheduler is not None else None
    _serve_in_background(app, host, port)
    _console(db, None, settings, clock=clock, feed=feed, scheduler_running=True)


def _serve_in_background(app, host: str, port: int) -> None:
    """Serve in a thread; return once it listens (so the URLs in the banner answer)."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           log_config=None))
    thread = threading.Thread(target=server.run, name="llm-incident-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            click.echo(f"llm-incident: the server did not start on {host}:{port} "
                       "(port in use? see the log above)", err=True)
            sys.exit(1)
        time.sleep(0.05)


def _console(database, user: str | None, settings: Settings, **kw) -> None:
    """The console loop (console.runtime.run_console); unusable alert rules exit 2."""
    from llm_incident.alerts.rules import RuleError
    from llm_incident.console.runtime import run_console

    try:
        run_console(database, user, settings, clock=kw.pop("clock", None) or _now, **kw)
    except RuleError as exc:
        click.echo(f"llm-incident: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option("--user", default=None, help="Who you are in the timeline (default: your login).")
def shell(user: str | None) -> None:
    """The local console: type /llm-incident commands, press buttons by number, no Slack needed.

    It runs the scheduler too (unless LLM_INCIDENT_SCHEDULER=false), so alerts, mitigation
    checks, expiries and nudges print as they come; the log shows warnings only."""
    logging.getLogger().setLevel(logging.WARNING)
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


@db.command("stats")
def db_stats() -> None:
    """Rows, size on disk and the oldest row of each table (what retention keeps)."""
    from llm_incident.dbstats import database_bytes, human_bytes, table_stats
    from llm_incident.metrics.windows import format_span

    settings = _settings()
    database, revision = _upgrade(settings)
    total, free = database_bytes(database)
    extra = f", {human_bytes(free)} free for reuse" if free else ""
    click.echo(f"database {database.backend} at revision {revision}: {human_bytes(total)}{extra}")
    click.echo(f"retention: events {format_span(settings.event_retention)}, "
               f"rollups {format_span(settings.rollup_retention)}")
    click.echo(f"{'table':<24} {'rows':>12} {'size':>10}  oldest")
    for t in table_stats(database):
        oldest = t.oldest.isoformat(timespec="seconds") if t.oldest else "-"
        click.echo(f"{t.name:<24} {t.rows:>12,} {human_bytes(t.bytes):>10}  {oldest}")


main.add_command(keys)


@main.command("export-labels")
@click.option("--incident", "number", type=int, default=None,
              help="Incident number (default: the evidence of every incident).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="JSON Lines, or CSV with metadata as a JSON string.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write (default: standard output).")
@DB_OPTION
def export_labels(number: int | None, fmt: str, output: str | None, db_path: str | None) -> None:
    """Export labelled evidence (event fields + label, note, labeller) to seed an eval set."""
    from llm_incident.evidence.export import export_rows, render
    from llm_incident.incidents.service import IncidentError, get_incident

    database = _reading(db_path)
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
@DB_OPTION
def postmortem(incident: str, output: str | None, charts_dir: str | None,
               db_path: str | None) -> None:
    """Print the postmortem of INCIDENT (3 or #3) as Markdown; an open one gives a draft as of now."""
    from llm_incident.incidents.postmortem import compile_postmortem, render_markdown, route_charts
    from llm_incident.incidents.service import IncidentError

    number = _incident_number(incident)
    database = _reading(db_path)
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
