"""The HTTP API at its edges, over the real server on SQLite and PostgreSQL: out-of-range numbers and
timestamps are 400s or per-event rejections naming the field (never 5xx, never losing the valid
events of a batch); unknown query parameters, undeclared methods and unknown paths answer
`{"error": …}`; `/docs` works offline; `GET /v1/events` pages with a cursor."""

from __future__ import annotations

import pytest

from llm_incident.api.docs import ASSETS_URL
from llm_incident.metrics.search import MAX_LIMIT

HUGE = 2**63
YEAR_1 = "0001-01-01T00:00:00+14:00"  # before datetime.min once in UTC
YEAR_9999 = "9999-12-31T23:59:59-14:00"  # after datetime.max once in UTC


def _ok(route: str = "edge.route", **fields) -> dict:
    return {"route": route, **fields}


@pytest.mark.parametrize("field, value", [
    ("tokens_in", HUGE), ("tokens_out", HUGE), ("attempt", HUGE), ("error_code", HUGE),
    ("tokens_out", 2**31),  # past PostgreSQL's INTEGER column
    ("tokens_in", -1), ("attempt", 0), ("error_code", -429),
    ("duration_ms", 1e300), ("cost_usd", 1e300),  # finite, but their sums would not be
    ("ts", YEAR_1), ("ts", YEAR_9999), ("ts", 1764165600),  # a number is not RFC 3339
    ("route", "nul\x00route"), ("metadata", {"k": "v\x00"}), ("metadata", {"k\x00": 1}),
])
def test_an_out_of_range_event_is_rejected_by_name_and_the_rest_of_the_batch_is_stored(api, field, value):
    batch = [_ok(event_id="before"), _ok(event_id="bad", **{field: value}), _ok(event_id="after")]
    response = api.post("/v1/events", json={"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    [rejected] = body["rejected"]
    assert rejected["index"] == 1 and rejected["event_id"] == "bad"
    assert [e["field"] for e in rejected["errors"]] == [field]
    stored = api.get("/v1/events", params={"filter": 'route = "edge.route"'}).json()
    assert sorted(e["event_id"] for e in stored["events"]) == ["after", "before"]


@pytest.mark.parametrize("ts", [YEAR_1, YEAR_9999, "1969-12-31T23:59:59Z", 0])
def test_a_change_with_an_out_of_range_timestamp_is_400_naming_ts(api, ts):
    response = api.post("/v1/changes", json={"route": "r", "kind": "deploy", "description": "v2",
                                             "ts": ts})
    assert response.status_code == 400, response.text
    assert "ts:" in response.json()["error"]


@pytest.mark.parametrize("payload, fragment", [
    ({"enabled": False, "incident": HUGE}, "incident must be an incident number from 1 to"),
    ({"enabled": False, "expected_version": HUGE}, "expected_version must be a whole number"),
    ({"enabled": False, "expires_at": YEAR_9999}, "expires_at: timestamp must be between"),
    ({"enabled": False, "expires_at": YEAR_1}, "expires_at: timestamp must be between"),
    ({"enabled": False, "reason": "a\x00b"}, "reason must be a string without NUL"),
    ({"model": "gpt\x00"}, "cannot contain NUL"),
])
def test_controls_changes_out_of_range_are_400(api, payload, fragment):
    response = api.put("/v1/routes/edge.route/controls", json=payload)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


@pytest.mark.parametrize("path", [f"/v1/incidents/{HUGE}/evidence", f"/v1/incidents/{HUGE}/postmortem",
                                  f"/v1/incidents/{2**31}/evidence", "/v1/incidents/0/postmortem"])
def test_incident_numbers_out_of_range_are_400(api, path):
    response = api.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("bad request: number:")


@pytest.mark.parametrize("path, params, name", [
    ("/v1/events", {"route": "x"}, "route"),
    ("/v1/routes/r/metrics", {"colour": "red"}, "colour"),
    ("/v1/routes/r/controls", {"waiting": "5"}, "waiting"),
    ("/v1/changes", {"route": "r", "since": "1h"}, "since"),
])
def test_unknown_query_parameters_are_400_naming_them(api, path, params, name):
    response = api.get(path, params=params)
    assert response.status_code == 400, response.text
    assert f"unknown query parameter {name!r}" in response.json()["error"]


def test_nul_in_a_path_or_query_value_is_400(api):
    for path in ("/v1/routes/a%00b/metrics", "/v1/routes/a%00b/controls", "/v1/changes?route=%00"):
        response = api.get(path)
        assert response.status_code == 400, (path, response.text)
        assert "NUL" in response.json()["error"]


def test_undeclared_methods_and_paths_answer_in_our_error_shape(api):
    options = api.options("/v1/routes/r/controls")
    assert options.status_code == 405
    assert set(options.headers["allow"].split(", ")) >= {"GET", "PUT", "POST"}
    assert options.json() == {"error": "method OPTIONS is not allowed on /v1/routes/r/controls"}
    delete = api.delete("/v1/changes")
    assert delete.status_code == 405 and set(delete.headers["allow"].split(", ")) >= {"GET", "POST"}
    missing = api.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "no such endpoint: /v1/nothing-here"}


def test_metrics_of_a_route_that_never_sent_an_event_say_so(api):
    api.post("/v1/events", json=[_ok("known.route")])
    unknown = api.get("/v1/routes/no.such.route/metrics").json()
    assert unknown["now"]["calls"] == 0
    assert unknown["warnings"] == ["route 'no.such.route' has sent no events yet: every stat is empty; "
                                   "check the name"]
    assert api.get("/v1/routes/known.route/metrics").json()["warnings"] == []
    assert api.get("/v1/routes/no.such.route/breakdowns").json()["warnings"] == unknown["warnings"]


def test_events_page_with_a_cursor_and_say_when_the_limit_was_capped(api):
    events = [_ok("paged", event_id=f"p{i:02}", ts=f"2026-11-26T14:{i:02}:00Z") for i in range(7)]
    events.append(_ok("paged", event_id="same-ts", ts="2026-11-26T14:06:00Z"))  # ties break by id
    assert api.post("/v1/events", json=events).json()["accepted"] == 8
    seen, cursor, pages = [], None, 0
    while True:
        params = {"filter": 'route = "paged"', "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/events", params=params).json()
        pages += 1
        assert page["limit"] == 3 and page["capped"] is False and page["count"] == len(page["events"])
        seen += [e["event_id"] for e in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 8
    assert seen[0] in ("same-ts", "p06") and seen[-1] == "p00"
    capped = api.get("/v1/events", params={"limit": MAX_LIMIT + 1}).json()
    assert capped["capped"] is True and capped["limit"] == MAX_LIMIT and capped["next"] is None
    assert api.get("/v1/events", params={"cursor": "not-a-cursor"}).status_code == 400


def test_the_openapi_document_declares_bodies_auth_and_real_answers(api):
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key from LLM_INCIDENT_API_KEYS or `llm-incident keys create`."}
    paths = doc["paths"]
    for path, method in [("/v1/events", "post"), ("/v1/changes", "post"), ("/v1/traces", "post"),
                         ("/v1/routes/{route}/controls", "put")]:
        assert "requestBody" in paths[path][method], path
    assert set(paths["/v1/traces"]["post"]["requestBody"]["content"]) == {
        "application/x-protobuf", "application/json"}
    assert set(paths["/v1/routes/{route}/controls"]["put"]["responses"]) >= {
        "200", "400", "401", "409", "413", "415"}
    assert "304" in paths["/v1/routes/{route}/controls"]["get"]["responses"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    limit = next(p for p in paths["/v1/events"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["type"] == "integer"
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            if path.startswith("/v1/"):
                assert operation["security"] == [{"apiKey": []}], (method, path)
                ok = operation["responses"].get("200") or operation["responses"]["201"]
                assert all(media.get("schema") for media in ok["content"].values()), (method, path)


def test_docs_load_swagger_ui_from_this_server_not_a_cdn(api):
    page = api.get("/docs")
    assert page.status_code == 200
    assert f"{ASSETS_URL}/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    script = api.get(f"{ASSETS_URL}/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert api.get(f"{ASSETS_URL}/swagger-ui.css").status_code == 200
