"""What the code defines, for the docs check: commands and options (click), environment variables
(Settings), endpoints and their scopes (the real app), slash-command and console verbs."""

from __future__ import annotations

import re
from pathlib import Path

import click

from llm_incident.cli import main
from llm_incident.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
ENV_NAME = re.compile(r"\b(?:LLM_INCIDENT|SLACK)_[A-Z0-9_]*[A-Z0-9]\b")


def command_tree() -> dict[tuple[str, ...], click.Command]:
    """Command path (() for `llm-incident` itself) → command, groups included."""
    found: dict[tuple[str, ...], click.Command] = {}

    def walk(path: tuple[str, ...], command: click.Command) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk((*path, name), sub)

    walk((), main)
    return found


def option_flags(path: tuple[str, ...], command: click.Command) -> list[str]:
    """The flags of a command's options; `--help` only for the top command (click adds it to all)."""
    flags = [flag for param in command.params if isinstance(param, click.Option) and not param.hidden
             for flag in (*param.opts, *param.secondary_opts)]
    if not path:
        flags += sorted(help_flags())
    return flags


def help_flags() -> set[str]:
    """`-h`, `--help`: the top command's help names, which its subcommands inherit."""
    help_option = main.get_help_option(click.Context(main, **main.context_settings))
    return set(help_option.opts) if help_option else set()


def all_flags(command: click.Command) -> set[str]:
    return set(option_flags(("any",), command)) | help_flags()


def bench_flags() -> set[str]:
    """Options of the bench scripts (docs name some, e.g. `--backend sqlite`)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bench").glob("*.py"))
    return set(re.findall(r"[\"'](--[a-z][\w-]*)[\"']", text))


def console_verbs() -> dict[str, tuple[str, str]]:
    """The console's own commands beside the slash commands (`postmortem`, `export`)."""
    from llm_incident.console import local

    return local.CONSOLE_VERBS


def environment_variables() -> dict[str, str]:
    """Variable → Settings field, from each field's alias (or the env prefix + its name)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            for choice in choices:
                names[str(choice).upper()] = field_name
        else:
            names[(str(alias) if alias else prefix + field_name).upper()] = field_name
    return names


def build_app(tmp_path: Path):
    """The real app with Slack on (HTTP mode, so `POST /slack/events` is mounted); nothing starts."""
    from llm_incident.app import create_app

    settings = load_settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'docs.db'}",
                             scheduler=False, slack_bot_token="xoxb-docs-check",
                             slack_signing_secret="docs-check", slack_app_token=None)
    return create_app(settings)


def endpoints(app) -> set[tuple[str, str]]:
    """(method, path) the app serves: the OpenAPI document plus routes outside it (Slack, docs)."""
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
             for method in operations if method.upper() in METHODS}
    for route in app.router.routes:
        for method in getattr(route, "methods", None) or ():
            if method in METHODS:
                found.add((method, route.path))
    return found


def environment_names_used_by_tests_and_benches() -> set[str]:
    names: set[str] = set()
    for folder in ("tests", "bench", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", "", ".sh", ".toml"):
                names |= set(ENV_NAME.findall(path.read_text(encoding="utf-8", errors="ignore")))
    return names



def scopes(app) -> dict[tuple[str, str], str]:
    """(method, path) → the API-key scope the endpoint declares (`api.deps.required_scope`)."""
    from fastapi.routing import APIRoute

    from llm_incident.api.deps import required_scope

    declared = {}
    for route in app.routes:
        included = getattr(route, "original_router", None)  # FastAPI ≥ 0.165 wraps included routers
        prefix = getattr(getattr(route, "include_context", None), "prefix", "")
        for api_route in (included.routes if included is not None else [route]):
            if isinstance(api_route, APIRoute) and required_scope(api_route):
                for method in api_route.methods - {"HEAD"}:
                    declared[(method, prefix + api_route.path)] = required_scope(api_route)
    return declared

