"""Service configuration from the environment (and a `.env` file), validated once at start."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
# event ids as our SDK (uuid4 hex), OTLP ingest (trace-span hex) and most apps write them
DEFAULT_EVENT_ID_PATTERN = (r"\b(?:[0-9a-f]{32}(?:-[0-9a-f]{16})?"
                            r"|[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12})\b")


REMINDER_MINUTES = {"sev1": 15, "sev2": 30, "sev3": 60, "sev4": 120}


class SettingsError(Exception):
    """Raised with one readable line per invalid variable."""


class Settings(BaseSettings):
    """Every knob of the service; names are the public contract (see README)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")

    database_url: str = Field(
        "sqlite:///./llm_incident.db", validation_alias="LLM_INCIDENT_DATABASE_URL"
    )
    incident_channel: str | None = Field(None, validation_alias="LLM_INCIDENT_INCIDENT_CHANNEL")
    alert_channel: str | None = Field(None, validation_alias="LLM_INCIDENT_ALERT_CHANNEL")
    responders: CommaList = Field(default_factory=list, validation_alias="LLM_INCIDENT_RESPONDERS")
    api_keys: CommaList = Field(default_factory=list, validation_alias="LLM_INCIDENT_API_KEYS")

    event_id_pattern: str = Field(
        DEFAULT_EVENT_ID_PATTERN, validation_alias="LLM_INCIDENT_EVENT_ID_PATTERN"
    )
    excerpt_max_chars: int = Field(
        2000, ge=0, le=100_000, validation_alias="LLM_INCIDENT_EXCERPT_MAX_CHARS"
    )
    max_batch_events: int = Field(
        5000, ge=1, validation_alias="LLM_INCIDENT_MAX_BATCH_EVENTS"
    )
    max_body_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, validation_alias="LLM_INCIDENT_MAX_BODY_BYTES"
    )

    header_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, validation_alias="LLM_INCIDENT_HEADER_TIMEOUT_SECONDS"
    )
    body_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, validation_alias="LLM_INCIDENT_BODY_TIMEOUT_SECONDS"
    )
    ingest_rate: float = Field(1000.0, gt=0, validation_alias="LLM_INCIDENT_INGEST_RATE")
    ingest_burst: int = Field(5000, ge=1, validation_alias="LLM_INCIDENT_INGEST_BURST")
    max_long_polls_per_key: int = Field(
        1000, ge=1, validation_alias="LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY"
    )

    scheduler: bool = Field(True, validation_alias="LLM_INCIDENT_SCHEDULER")
    alert_rules: str | None = Field(None, validation_alias="LLM_INCIDENT_ALERT_RULES")
    alert_interval_seconds: int = Field(
        60, ge=1, le=86_400, validation_alias="LLM_INCIDENT_ALERT_INTERVAL_SECONDS"
    )
    status_reminder_minutes: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(REMINDER_MINUTES),
        validation_alias="LLM_INCIDENT_STATUS_REMINDER_MINUTES",
    )
    mitigation_check_minutes: int = Field(
        5, ge=1, le=1440, validation_alias="LLM_INCIDENT_MITIGATION_CHECK_MINUTES"
    )
    followup_days: int = Field(7, ge=1, le=365, validation_alias="LLM_INCIDENT_FOLLOWUP_DAYS")

    dashboard_public: bool = Field(False, validation_alias="LLM_INCIDENT_DASHBOARD_PUBLIC")
    dashboard_secret: str | None = Field(None, validation_alias="LLM_INCIDENT_DASHBOARD_SECRET")
    dashboard_refresh_seconds: int = Field(
        60, ge=0, le=86_400, validation_alias="LLM_INCIDENT_DASHBOARD_REFRESH_SECONDS"
    )
    dashboard_url: str | None = Field(None, validation_alias="LLM_INCIDENT_DASHBOARD_URL")

    event_retention: Annotated[timedelta, NoDecode] = Field(
        timedelta(days=30), validation_alias="LLM_INCIDENT_EVENT_RETENTION")
    rollup_retention: Annotated[timedelta, NoDecode] = Field(
        timedelta(days=400), validation_alias="LLM_INCIDENT_ROLLUP_RETENTION")
    exact_window_max: Annotated[timedelta, NoDecode] = Field(
        timedelta(hours=6), validation_alias="LLM_INCIDENT_EXACT_WINDOW_MAX")

    @field_validator("event_retention", "rollup_retention", "exact_window_max", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        """"30d", "12h", "90m" or a bare number of days → timedelta; at least one minute."""
        if isinstance(value, str):
            value = parse_duration(value)
        if isinstance(value, timedelta) and value < timedelta(minutes=1):
            raise ValueError("must be at least 1m")
        return value

    @field_validator("responders", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _key_scopes(cls, value: list[str]) -> list[str]:
        """Each entry is SCOPE:KEY (scopes joined by +) or a bare KEY (every scope, deprecated)."""
        from llm_incident.apikeys import split_entry

        for entry in value:
            split_entry(entry)
        return value

    @field_validator("status_reminder_minutes", mode="before")
    @classmethod
    def _reminders(cls, value: object) -> object:
        """"sev1=15,sev2=30" → {"sev1": 15, …}; unnamed severities keep their default; 0 = off."""
        if not isinstance(value, str):
            return value
        minutes = dict(REMINDER_MINUTES)
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, _, number = part.partition("=")
            name = name.strip().lower()
            if name not in REMINDER_MINUTES or not number.strip().isdigit():
                raise ValueError(f"{part!r}: write severity=minutes, e.g. sev1=15,sev2=30 "
                                 f"(severities: {', '.join(REMINDER_MINUTES)}; 0 = off)")
            minutes[name] = int(number)
        return minutes

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_prefix(cls, value: str | None) -> str | None:
        if value and not value.startswith("xapp-"):
            raise ValueError("must start with 'xapp-' (an app-level token)")
        return value or None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_url(cls, value: str | None) -> str | None:
        """The dashboard's public base URL (links from Slack); no trailing slash; empty → None."""
        value = (value or "").strip()
        if not value:
            return None
        if not re.fullmatch(r"https?://[^\s<>|\"'`/]+[^\s<>|\"'`]*", value):
            raise ValueError("must be an http(s) URL (the public base URL of `llm-incident "
                             "serve`, e.g. https://llm-incident.internal.example)")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """A SQLite or PostgreSQL SQLAlchemy URL, with the driver for it installed."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(f"{value!r} is not a database URL; use sqlite:///path/to/file.db "
                             "or postgresql://user@host/dbname") from None
        if backend == "postgres":
            backend = "postgresql"
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{backend!r} databases are not supported; use sqlite:///… or "
                             "postgresql://…")
        if backend == "postgresql" and importlib.util.find_spec("psycopg") is None:
            raise ValueError("PostgreSQL needs the psycopg driver: pip install "
                             "'llm-incident[postgres]'")
        return value

    @field_validator("event_id_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def slack_enabled(self) -> bool:
        """True when Slack credentials for HTTP or Socket Mode are present."""
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw]?)")
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(text: str) -> timedelta:
    """`"30d"`, `"12h"`, `"90m"`, `"2w"` or a bare number of days → timedelta."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r}: write a number and a unit m, h, d or w, e.g. 30d or 6h")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])


_ALIASES = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()}


def load_settings(**overrides: object) -> Settings:
    """Build settings from env/.env plus overrides; invalid values raise SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"{_ALIASES.get(field, field)}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
