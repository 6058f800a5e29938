"""`llm-incident keys …`: API keys for the /v1 endpoints (create, list, revoke)."""

from __future__ import annotations

import sys

import click


def _database():
    from llm_incident.cli import _settings, _upgrade

    return _upgrade(_settings())[0]


def _now():
    from llm_incident.cli import _now as now

    return now()


@click.group()
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
    database = _database()
    with database.write() as session:
        row, plain = create_key(session, name, now=_now(), scopes=chosen)
    click.echo(plain)
    click.echo(f"key #{row.id} '{name}' ({scope_text(chosen)}) created; store it now, it cannot be shown again",
               err=True)


@keys.command("list")
def keys_list() -> None:
    """List keys: id, name, scopes, hint, created, revoked."""
    from llm_incident.apikeys import list_keys

    database = _database()
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

    database = _database()
    with database.write() as session:
        rows = revoke_key(session, key_id_or_name, now=_now())
    if not rows:
        click.echo(f"llm-incident: no active key with id or name {key_id_or_name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {len(rows)} key(s): " + ", ".join(f"#{r.id} {r.name}" for r in rows))
