"""`/v1/keys` with an `admin` key: create (the key shown once), list (never the key), revoke; the
created key holds exactly its scopes, and a revoked one stops working at once."""

from __future__ import annotations

import httpx
import pytest

from llm_incident.app import create_app
from tests.support import live_server, settings_for

ADMIN = "admin-key-0123456789"


@pytest.fixture
def base(db):
    app = create_app(settings_for(db, api_keys=[f"admin:{ADMIN}"]), database=db)
    with live_server(app) as url:
        yield url


def admin(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def test_a_created_key_holds_its_scopes_and_revoking_it_stops_it(base):
    with admin(base) as client:
        made = client.post("/v1/keys", json={"name": "reader", "scopes": ["read"]})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        assert made.json()["scopes"] == ["read"] and made.json()["hint"] == key[:8] + "…"
        listed = client.get("/v1/keys").json()["keys"]
        assert [(k["name"], k["scopes"], k["revoked_at"]) for k in listed] == [("reader", ["read"], None)]
        assert key not in client.get("/v1/keys").text
        reader = {"Authorization": f"Bearer {key}"}
        assert httpx.get(base + "/v1/controls", headers=reader).status_code == 200
        refused = httpx.put(base + "/v1/routes/r/controls", json={"enabled": False}, headers=reader)
        assert refused.status_code == 403 and "needs the `controls` scope" in refused.json()["error"]
        assert httpx.get(base + "/v1/keys", headers=reader).status_code == 403
        revoked = client.delete("/v1/keys/reader")
        assert revoked.status_code == 200 and revoked.json()["keys"][0]["revoked_at"]
        assert httpx.get(base + "/v1/controls", headers=reader).status_code == 401
        assert client.delete("/v1/keys/reader").status_code == 404


@pytest.mark.parametrize("body, words", [
    ({"name": "x", "scopes": ["root"]}, "scopes: Input should be 'ingest', 'read', 'controls' or 'admin'"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "", "scopes": ["read"]}, "name"),
    ({"name": "x\u0000y", "scopes": ["read"]}, "name"),
    ({"name": "x", "scopes": ["read"], "secret": "mine"}, "secret"),
])
def test_bad_key_requests_are_400_and_create_nothing(base, body, words):
    with admin(base) as client:
        answer = client.post("/v1/keys", json=body)
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["error"]
        assert client.get("/v1/keys").json()["keys"] == []
