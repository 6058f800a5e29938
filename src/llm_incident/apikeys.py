"""API keys for the HTTP API: only a SHA-256 hash is stored; env keys bootstrap without a row.

Every key carries scopes: `ingest` (send events, traces, changes), `read` (metrics, events, evidence,
postmortems, controls GET), `controls` (change controls), `admin` (manage keys).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, select

KEY_PREFIX = "lli_"
SCOPES = ("ingest", "read", "controls", "admin")
ALL_SCOPES = frozenset(SCOPES)
log = logging.getLogger(__name__)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, nullable=False)
    key_hash: str = Field(max_length=64, unique=True, nullable=False)
    hint: str = Field(max_length=20, nullable=False)
    # space-separated scope names; rows from before scopes existed hold every scope
    scope: str = Field(default=" ".join(SCOPES), max_length=100, nullable=False)
    created_at: datetime = Field(nullable=False)
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class KeyIdentity:
    """Who presented a valid key: its name (the audit's actor) and what it may do."""

    name: str
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Scope names (commas or spaces allowed) → a set; ValueError naming an unknown one."""
    found = {part.strip().lower() for value in values for part in value.replace(",", " ").split()}
    unknown = sorted(found - ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    if not found:
        raise ValueError(f"give at least one scope ({', '.join(SCOPES)})")
    return frozenset(found)


def scope_text(scopes: Iterable[str]) -> str:
    """Scopes in their documented order, space-separated."""
    chosen = set(scopes)
    return " ".join(s for s in SCOPES if s in chosen)


def create_key(session: Session, name: str, *, now: datetime,
               scopes: Iterable[str] = SCOPES) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(plain), hint=plain[:8] + "…", created_at=now,
                 scope=scope_text(parse_scopes(scopes)))
    session.add(row)
    session.flush()
    return row, plain


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, ident: str, *, now: datetime) -> list[ApiKey]:
    """Revoke active keys whose id or name is `ident`; returns what was revoked."""
    stmt = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    stmt = stmt.where(ApiKey.id == int(ident)) if ident.isdigit() else stmt.where(ApiKey.name == ident)
    rows = list(session.exec(stmt))
    for row in rows:
        row.revoked_at = now
        session.add(row)
    return rows


def split_entry(entry: str) -> tuple[frozenset[str] | None, str]:
    """One `LLM_INCIDENT_API_KEYS` entry → (scopes, key): `ingest:KEY`, `read+controls:KEY`, or a bare
    `KEY` (scopes None). ValueError for an unknown scope or an empty key (generated keys have no colon)."""
    head, sep, key = entry.partition(":")
    if not sep:
        return None, entry
    if not key.strip():
        raise ValueError(f"{head}: no key after the scope (write SCOPE:KEY)")
    return parse_scopes([head.replace("+", " ")]), key.strip()


def parse_bootstrap(entries: Iterable[str]) -> dict[str, KeyIdentity]:
    """Env entries → key hash → identity named `env-key-N`; a bare key holds every scope (deprecated,
    logged once per app)."""
    keys: dict[str, KeyIdentity] = {}
    bare = 0
    for number, entry in enumerate(entries, start=1):
        scopes, key = split_entry(entry)
        if scopes is None:
            scopes, bare = ALL_SCOPES, bare + 1
        keys[hash_key(key)] = KeyIdentity(f"env-key-{number}", scopes)
    if bare:
        log.warning("LLM_INCIDENT_API_KEYS: %d key(s) without a scope hold every scope; this is "
                    "deprecated, write SCOPE:KEY (scopes: %s), e.g. ingest:KEY", bare, ", ".join(SCOPES))
    return keys


class KeyChecker:
    """Answers "whose is this bearer key, and what may it do?" from env bootstrap keys and the table."""

    def __init__(self, bootstrap_keys: Iterable[str]) -> None:
        self._bootstrap = parse_bootstrap(bootstrap_keys)

    def identify(self, session: Session, presented: str | None) -> KeyIdentity | None:
        """The key's identity, or None for a missing, unknown or revoked key."""
        if not presented:
            return None
        digest = hash_key(presented)
        for known, identity in self._bootstrap.items():
            if secrets.compare_digest(digest, known):
                return identity
        stmt = select(ApiKey.name, ApiKey.scope).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        row = session.exec(stmt).first()
        if row is None:
            return None
        return KeyIdentity(row[0], frozenset(row[1].split()) & ALL_SCOPES)

    def is_valid(self, session: Session, presented: str | None) -> bool:
        return self.identify(session, presented) is not None
