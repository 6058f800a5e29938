"""Who may see the dashboard: anyone when `LLM_INCIDENT_DASHBOARD_PUBLIC=true`, else a key with
the `read` scope, presented as `Authorization: Bearer <key>` or once in the login form, which
sets a signed, HttpOnly session cookie.

The cookie holds the key's SHA-256 hash and an expiry, signed with HMAC-SHA256 under
`LLM_INCIDENT_DASHBOARD_SECRET` (random per process when unset: sessions then end at a restart
and are not shared between replicas). Each request checks the hash again, so a revoked key's
sessions end at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from sqlmodel import Session, select

from llm_incident.apikeys import ALL_SCOPES, ApiKey, KeyIdentity, hash_key, split_entry
from llm_incident.settings import Settings

COOKIE = "llm_incident_session"
SESSION_SECONDS = 12 * 3600
SCOPE = "read"


@dataclass(frozen=True)
class Sessions:
    """Signs and reads session cookies; knows the bootstrap keys by hash."""

    secret: bytes
    bootstrap: dict[str, KeyIdentity]

    @classmethod
    def from_settings(cls, settings: Settings) -> Sessions:
        secret = (settings.dashboard_secret or "").encode() or secrets.token_bytes(32)
        bootstrap = {}
        for number, entry in enumerate(settings.api_keys, start=1):
            scopes, key = split_entry(entry)
            bootstrap[hash_key(key)] = KeyIdentity(f"env-key-{number}", scopes or ALL_SCOPES)
        return cls(secret, bootstrap)

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def cookie_for(self, key: str, now: float | None = None) -> str:
        """The cookie value for a session of `key` from `now` (epoch seconds)."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        payload = json.dumps({"h": hash_key(key), "x": expires}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def key_hash(self, cookie: str | None, now: float | None = None) -> str | None:
        """The key hash of a well-signed, unexpired cookie; None otherwise."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
            digest, expires = str(data["h"]), float(data["x"])
        except (ValueError, KeyError, TypeError):
            return None
        return digest if expires > (time.time() if now is None else now) else None

    def identify_hash(self, session: Session, digest: str) -> KeyIdentity | None:
        """The identity of an active key with this hash (bootstrap or stored)."""
        for known, identity in self.bootstrap.items():
            if hmac.compare_digest(known, digest):
                return identity
        row = session.exec(select(ApiKey.name, ApiKey.scope).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))).first()
        return None if row is None else KeyIdentity(row[0], frozenset(row[1].split()) & ALL_SCOPES)
