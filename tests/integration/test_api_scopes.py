"""Scoped API keys over HTTP: the scope × endpoint matrix (generated from the app's route table), and
the audit naming who really acted (the key, never a forged Slack user; no made-up incidents)."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from fastapi.routing import APIRoute
from openfeature import api as openfeature

from llm_incident.apikeys import SCOPES, create_key
from llm_incident.api.deps import required_scope
from llm_incident.app import create_app
from llm_incident_client import Controls
from llm_incident_client.openfeature import ControlsProvider
from llm_incident.controls.service import control_history
from llm_incident.incidents.service import StartRequest, start_incident
from tests.support import TEST_KEY, live_server, settings_for

# The documented scope of every /v1 operation (README "API keys and scopes"). A new endpoint fails
# `test_every_v1_operation_declares_the_documented_scope` until it is added here and to the README.
EXPECTED = {
    ("POST", "/v1/events"): "ingest",
    ("POST", "/v1/traces"): "ingest",
    ("POST", "/v1/changes"): "ingest",
    ("GET", "/v1/changes"): "read",
    ("GET", "/v1/events"): "read",
    ("GET", "/v1/routes/{route}/metrics"): "read",
    ("GET", "/v1/routes/{route}/breakdowns"): "read",
    ("GET", "/v1/routes/{route}/triage"): "read",
    ("GET", "/v1/incidents/{number}/evidence"): "read",
    ("GET", "/v1/incidents/{number}/postmortem"): "read",
    ("GET", "/v1/controls"): "read",
    ("GET", "/v1/routes/{route}/controls"): "read",
    ("PUT", "/v1/routes/{route}/controls"): "controls",
    ("POST", "/v1/routes/{route}/controls"): "controls",
    ("GET", "/v1/audit"): "read",
    ("GET", "/v1/instances"): "read",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key}"): "admin",
}
KEYS = {scope: f"{scope}-key-0123456789" for scope in SCOPES}
URL = "/v1/routes/support.reply/controls"
SAMPLE_PATH = {"route": "support.reply", "number": "1", "key": "no-such-key"}
SAMPLE_BODY = {"/v1/events": [{"route": "support.reply"}], "/v1/changes":
               {"route": "support.reply", "kind": "deploy", "description": "v2"},
               "/v1/traces": {"resourceSpans": []}, "/v1/routes/{route}/controls": {"retry_cap": 2},
               "/v1/keys": {"name": "matrix", "scopes": ["read"]}}
SAMPLE_QUERY = {("GET", "/v1/changes"): {"route": "support.reply"}, ("GET", "/v1/events"): {"filter": 'status = "ok"'}}


@pytest.fixture
def scoped(db):
    """A server whose bootstrap keys hold one scope each (named env-key-1 … in SCOPES order), plus
    TEST_KEY (bare: every scope) last."""
    keys = [f"{scope}:{KEYS[scope]}" for scope in SCOPES] + [TEST_KEY]
    app = create_app(settings_for(db, api_keys=keys), database=db)
    with live_server(app) as base:
        yield app, base


def api_routes(app) -> list[APIRoute]:
    """Every APIRoute the app serves, through included routers (FastAPI ≥ 0.165 wraps them)."""
    try:
        from fastapi.routing import _iter_included_route_candidates as effective
    except ImportError:  # older FastAPI: app.routes holds the APIRoutes themselves
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [r for r in effective(app.routes) if isinstance(r, APIRoute)]


def v1_operations(app) -> list[tuple[str, str, APIRoute]]:
    return sorted(((method, route.path, route) for route in api_routes(app)
                   if isinstance(route, APIRoute) and route.path.startswith("/v1/")
                   for method in route.methods if method != "HEAD"), key=lambda op: op[:2])


def call(base: str, method: str, path: str, key: str | None) -> httpx.Response:
    url = base + path.format(**SAMPLE_PATH)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = SAMPLE_BODY.get(path) if method in ("POST", "PUT") else None
    return httpx.request(method, url, json=body, params=SAMPLE_QUERY.get((method, path)), headers=headers, timeout=10)


def test_every_v1_operation_declares_the_documented_scope(scoped):
    app, _ = scoped
    declared = {(method, path): required_scope(route) for method, path, route in v1_operations(app)}
    assert declared == EXPECTED
    assert [r.path for r in api_routes(app) if r.path.startswith("/v1/") and required_scope(r) is None] == []
    assert {r.path for r in api_routes(app) if r.path in ("/healthz", "/metrics")} == {"/healthz", "/metrics"}


def test_each_key_reaches_exactly_the_operations_of_its_scope(scoped):
    app, base = scoped
    seen = []
    for method, path, route in v1_operations(app):
        needed = required_scope(route)
        for scope, key in KEYS.items():
            response = call(base, method, path, key)
            if scope == needed:
                assert response.status_code not in (401, 403), (method, path, scope, response.text)
            else:
                assert response.status_code == 403, (method, path, scope, response.text)
                assert response.json()["error"].endswith(f"needs the `{needed}` scope")
                assert f"env-key-{SCOPES.index(scope) + 1}" in response.json()["error"]
            seen.append((method, path, scope))
        assert call(base, method, path, None).status_code == 401
        assert call(base, method, path, TEST_KEY).status_code not in (401, 403), (method, path)
    assert len(seen) == len(EXPECTED) * len(SCOPES)


def test_openapi_declares_403_on_every_scoped_operation(scoped):
    app, _ = scoped
    paths = app.openapi()["paths"]
    for method, path in EXPECTED:
        assert "403" in paths[path][method.lower()]["responses"], (method, path)


def test_a_read_key_cannot_change_controls_and_nothing_is_recorded(scoped, db):
    _, base = scoped
    headers = {"Authorization": f"Bearer {KEYS['read']}"}
    refused = httpx.put(base + URL, json={"enabled": True, "actor": "U0RESP"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"].endswith("needs the `controls` scope")
    assert httpx.get(base + URL, headers=headers).json()["version"] == 0
    with db.read() as session:
        assert control_history(session, route="support.reply", env="prod") == []


def test_a_forged_actor_is_recorded_as_on_behalf_of_the_key(scoped, db):
    _, base = scoped
    headers = {"Authorization": f"Bearer {KEYS['controls']}"}
    answer = httpx.put(base + URL, json={"enabled": False, "actor": "U0RESP"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["controls"]["updated_by"] == "key:env-key-3 on behalf of U0RESP"
    answer = httpx.put(base + URL, json={"enabled": True, "on_behalf_of": "ana"}, headers=headers)
    assert answer.json()["controls"]["updated_by"] == "key:env-key-3 on behalf of ana"
    plain = httpx.put(base + URL, json={"retry_cap": 1}, headers=headers)
    assert plain.json()["controls"]["updated_by"] == "key:env-key-3"
    with db.read() as session:
        actors = [c.actor for c in control_history(session, route="support.reply", env="prod")]
    assert sorted(actors) == sorted(["key:env-key-3 on behalf of U0RESP", "key:env-key-3 on behalf of ana",
                                     "key:env-key-3"])
    assert "U0RESP" not in actors


def test_actor_and_on_behalf_of_that_disagree_or_are_too_long_are_refused(scoped):
    _, base = scoped
    headers = {"Authorization": f"Bearer {KEYS['controls']}"}
    both = httpx.put(base + URL, json={"enabled": False, "actor": "U1", "on_behalf_of": "U2"}, headers=headers)
    assert both.status_code == 400 and "not both" in both.json()["error"]
    long = httpx.put(base + URL, json={"enabled": False, "on_behalf_of": "x" * 101}, headers=headers)
    assert long.status_code == 400 and "at most 100" in long.json()["error"]
    assert httpx.get(base + URL, headers={"Authorization": f"Bearer {TEST_KEY}"}).json()["version"] == 0


def test_an_unknown_incident_is_a_400_and_a_known_one_is_recorded(scoped, db):
    _, base = scoped
    headers = {"Authorization": f"Bearer {KEYS['controls']}"}
    unknown = httpx.put(base + URL, json={"enabled": False, "incident": 999}, headers=headers)
    assert unknown.status_code == 400 and unknown.json() == {"error": "incident #999 does not exist"}
    with db.read() as session:
        assert control_history(session, route="support.reply", env="prod") == []
    with db.write() as session:
        incident, _ = start_incident(session, StartRequest(commander="U1", routes=("support.reply",)),
                                     now=datetime.now(timezone.utc))
        number = incident.number
    known = httpx.put(base + URL, json={"enabled": False, "incident": number}, headers=headers)
    assert known.status_code == 200, known.text
    with db.read() as session:
        [change] = control_history(session, route="support.reply", env="prod")
    assert (change.incident, change.actor) == (number, "key:env-key-3")


def test_a_named_key_acts_under_its_name_and_its_scopes_only(scoped, db):
    _, base = scoped
    with db.write() as session:
        _, plain = create_key(session, "deploy-bot", now=datetime.now(timezone.utc), scopes=["controls"])
    headers = {"Authorization": f"Bearer {plain}"}
    answer = httpx.put(base + URL, json={"enabled": False}, headers=headers)
    assert answer.status_code == 200 and answer.json()["controls"]["updated_by"] == "key:deploy-bot"
    denied = httpx.post(base + "/v1/events", json=[{"route": "r"}], headers=headers)
    assert denied.status_code == 403 and "'deploy-bot' (scopes: controls)" in denied.json()["error"]


def test_the_controls_client_and_openfeature_provider_need_only_read(scoped):
    _, base = scoped
    httpx.put(base + URL, json={"enabled": False}, headers={"Authorization": f"Bearer {KEYS['controls']}"})
    with Controls(base, KEYS["read"], wait=2) as controls:
        assert controls.wait_ready(5) and controls.last_error is None
        assert controls.guard("support.reply").allowed is False
        openfeature.set_provider_and_wait(ControlsProvider(controls))
        try:
            assert openfeature.get_client().get_boolean_value("support.reply.enabled", True) is False
        finally:
            openfeature.shutdown()
