"""API keys for the HTTP API: only a SHA-256 hash is stored; env keys bootstrap without a row."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, select

KEY_PREFIX = "lli_"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, nullable=False)
    key_hash: str = Field(max_length=64, unique=True, nullable=False)
    hint: str = Field(max_length=20, nullable=False)
    created_at: datetime = Field(nullable=False)
    revoked_at: datetime | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str, *, now: datetime) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(plain), hint=plain[:8] + "…", created_at=now)
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


class KeyChecker:
    """Answers "is this bearer key valid?" from env bootstrap keys and the table."""

    def __init__(self, bootstrap_keys: Iterable[str]) -> None:
        self._bootstrap = {hash_key(k) for k in bootstrap_keys}

    def is_valid(self, session: Session, presented: str | None) -> bool:
        if not presented:
            return False
        digest = hash_key(presented)
        if any(secrets.compare_digest(digest, h) for h in self._bootstrap):
            return True
        stmt = select(ApiKey.id).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        return session.exec(stmt).first() is not None
