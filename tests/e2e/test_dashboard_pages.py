"""The dashboard over HTTP without a browser (what a reader with JavaScript off gets), on both
backends: the overview's numbers are the metrics API's, pages need a `read` key unless public, the
session cookie is signed and HttpOnly and ends with its key, and pages stay out of the OpenAPI
document."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import unescape

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.apikeys import create_key, revoke_key
from llm_incident.dashboard.auth import COOKIE
from llm_incident.dashboard.ranges import RANGES
from tests.dashboard_seed import NOW, QUIET, REGRESSING, STEADY, SYMPTOM, seed
from tests.support import TEST_KEY, live_server, settings_for

READ_KEY, INGEST_KEY = "read-key-0123456789", "ingest-key-0123456789"
CELL = re.compile(r'<tr class="route-row[^"]*" data-route="([^"]+)">(.*?)</tr>', re.S)
VALUE = re.compile(r'data-col="([a-z0-9_]+)" data-value="([^"]*)"')


def _app(db, **overrides):
    settings = settings_for(db, api_keys=[f"read:{READ_KEY}", f"ingest:{INGEST_KEY}"], **overrides)
    return create_app(settings, database=db, clock=lambda: NOW)


@pytest.fixture
def site(db):
    seed(db)
    with live_server(_app(db)) as url:
        yield url


def _get(url, key=READ_KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(url, headers=headers, follow_redirects=False, timeout=30, **kw)


def overview_values(html: str) -> dict[str, dict[str, float | None]]:
    """route → column → the number the row carries (None: n/a)."""
    return {route: {col: float(v) if v else None for col, v in VALUE.findall(cells)}
            for route, cells in CELL.findall(html)}


def test_overview_lists_every_route_with_the_metrics_api_numbers(site):
    html = _get(f"{site}/").text
    values = overview_values(html)
    assert list(values) == [QUIET, STEADY, REGRESSING]  # sorted by route name
    for route in (STEADY, REGRESSING):
        body = _get(f"{site}/v1/routes/{route}/metrics", params={"window": "1h"}).json()["now"]
        row = values[route]
        assert row["calls"] == body["calls"] == 60
        assert row["flagged_rate"] == pytest.approx(body["flagged_rate"])
        assert row["p95_duration_ms"] == pytest.approx(body["p95_duration_ms"])
        assert row["p95_tokens_out"] == body["p95_tokens_out"]
        assert row["cost_per_hour"] == pytest.approx(body["total_cost_usd"])  # a 1 h range
    assert values[QUIET]["calls"] == 0 and values[QUIET]["flagged_rate"] is None
    regressing = re.search(rf'<tr class="route-row([^"]*)" data-route="{REGRESSING}"', html)
    steady = re.search(rf'<tr class="route-row([^"]*)" data-route="{STEADY}"', html)
    assert "regressed" in regressing.group(1) and "regressed" not in steady.group(1)
    assert "max_tokens 512" in html and 'href="/incidents/1"' in html
    assert '<meta http-equiv="refresh" content="60">' in html


def test_overview_sorts_by_a_column_either_way(site):
    def order(**params):
        return list(overview_values(_get(f"{site}/", params=params).text))
    assert order(sort="p95_tokens_out", desc=1) == [REGRESSING, STEADY, QUIET]
    assert order(sort="p95_tokens_out", desc=0) == [STEADY, REGRESSING, QUIET]  # no value last
    assert order(sort="route", desc=1) == [REGRESSING, STEADY, QUIET]


def test_a_range_changes_the_window_and_the_cost_per_hour(site):
    values = overview_values(_get(f"{site}/", params={"range": "24h"}).text)
    body = _get(f"{site}/v1/routes/{REGRESSING}/metrics", params={"window": "24h"}).json()["now"]
    assert values[REGRESSING]["calls"] == body["calls"] == 120
    assert values[REGRESSING]["cost_per_hour"] == pytest.approx(body["total_cost_usd"] / 24)


def _circles(svg: str) -> int:
    return svg.count('<circle class="pt"')


def test_route_page_charts_one_point_per_bucket_with_calls_and_marks_the_deploy(site):
    html = _get(f"{site}/routes/{REGRESSING}", params={"range": "6h"}).text
    boxes = re.findall(r'<div class="chart-box" data-stat="([a-z0-9_]+)">(.*?)</svg></div>', html, re.S)
    assert [stat for stat, _ in boxes] == ["flagged_rate", "p95_duration_ms", "p95_tokens_out",
                                           "total_cost_usd"]
    # 120 calls a minute apart in the last two hours: 24 five-minute buckets hold calls (the
    # oldest call falls in a 25th bucket because the window ends on a bucket edge after NOW)
    counts = {_circles(svg) for _, svg in boxes}
    assert counts == {25}
    assert html.count('class="mark mark-change"') == 4 and "deploy 4.2: longer answers" in html
    assert html.count('class="mark mark-control"') == 4 and html.count('class="mark mark-incident"') == 4
    assert "max_tokens: none → 512" in html and "clamp while we look" in html  # the audit
    assert 'id="unknown-route"' not in html
    typo = _get(f"{site}/routes/support.replly").text
    assert 'id="unknown-route"' in typo and "has sent no events yet" in typo


def test_the_filter_box_finds_events_and_shows_a_bad_filters_error(site):
    default = _get(f"{site}/routes/{REGRESSING}").text
    assert default.count('<tr class="event"') == 15  # the recent hour's flagged calls
    found = _get(f"{site}/routes/{REGRESSING}", params={"filter": "tokens_out >= 955"})
    assert found.status_code == 200
    newest_first = [f"{REGRESSING}-{i}" for i in range(55, 60)]  # i minutes ago
    assert re.findall(r'data-event-id="([^"]+)"', found.text) == newest_first
    bad = _get(f"{site}/routes/{REGRESSING}", params={"filter": "tokens_out >"})
    assert bad.status_code == 400
    assert 'id="filter-error"' in bad.text and "bad filter at" in bad.text
    assert 'value="tokens_out &gt;"' in bad.text  # the text stays in the box, escaped


def test_incident_page_shows_evidence_labels_and_the_postmortem_as_html(site):
    html = _get(f"{site}/incidents/1").text
    assert re.search(r'data-event-id="support.reply-0">.*?<span class="badge">bad</span>', html, re.S)
    assert re.search(r'data-event-id="support.reply-1">.*?<span class="badge">good</span>', html, re.S)
    assert "<h1>Postmortem — incident #1" in html and "<table>" in html  # Markdown rendered
    assert "<b>cut off</b>" not in html and unescape("&lt;b&gt;cut off&lt;/b&gt;") in unescape(html)
    assert SYMPTOM.replace("<", "&lt;").replace(">", "&gt;").replace(" & ", " &amp; ") in html
    assert "Likely cause" in html and "clamp while we look" not in html.split("Postmortem")[0]
    listing = _get(f"{site}/incidents").text
    assert 'href="/incidents/1"' in listing
    assert _get(f"{site}/incidents/99").status_code == 404


def test_pages_need_a_read_key(site):
    first = _get(f"{site}/routes/{REGRESSING}?range=6h", key=None)
    assert first.status_code == 303
    assert first.headers["location"] == f"/login?next=%2Froutes%2F{REGRESSING}%3Frange%3D6h"
    assert _get(f"{site}/", key="not-a-key").status_code == 401
    denied = _get(f"{site}/", key=INGEST_KEY)
    assert denied.status_code == 403 and "lacks the `read` scope" in denied.text
    assert _get(f"{site}/", key=TEST_KEY).status_code == 401  # not among this app's keys
    assert _get(f"{site}/login", key=None).status_code == 200


def test_login_sets_a_signed_httponly_cookie_that_ends_with_its_key(site, db):
    with db.write() as session:
        _, plain = create_key(session, "viewer", now=datetime.now(timezone.utc), scopes=["read"])
    with httpx.Client(base_url=site, follow_redirects=False, timeout=30) as browser:
        wrong = browser.post("/login", data={"key": INGEST_KEY, "next": "/incidents"})
        assert wrong.status_code == 401 and "lacks the `read` scope" in wrong.text
        answer = browser.post("/login", data={"key": plain, "next": "/incidents"})
        assert answer.status_code == 303 and answer.headers["location"] == "/incidents"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and plain not in cookie
        assert browser.get("/incidents").status_code == 200
        value = browser.cookies[COOKIE]
        browser.cookies.set(COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
        assert browser.get("/").status_code == 303  # a tampered signature is no session
        browser.cookies.set(COOKIE, value)
        with db.write() as session:
            assert revoke_key(session, "viewer", now=datetime.now(timezone.utc))
        assert browser.get("/").status_code == 303  # the key's sessions end with it
        offsite = browser.post("/login", data={"key": READ_KEY, "next": "//evil.example/"})
        assert offsite.headers["location"] == "/"


def test_public_dashboard_needs_no_key_but_the_api_still_does(db):
    seed(db)
    with live_server(_app(db, dashboard_public=True, dashboard_refresh_seconds=0)) as url:
        page = _get(f"{url}/", key=None)
        assert page.status_code == 200 and REGRESSING in page.text
        assert 'http-equiv="refresh"' not in page.text and "Log out" not in page.text
        assert _get(f"{url}/v1/routes/{REGRESSING}/metrics", key=None).status_code == 401


def test_pages_are_not_in_the_openapi_document(site):
    paths = _get(f"{site}/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/v1/") and p not in ("/healthz", "/readyz", "/metrics")]
    assert sorted(RANGES) == sorted(["1h", "6h", "24h", "7d", "30d"])


def test_percentiles_read_from_rollups_are_marked_approximate(db):
    from datetime import timedelta

    from llm_incident.rollups.build import roll_up

    seed(db)
    roll_up(db, NOW + timedelta(minutes=5))
    with live_server(_app(db)) as url:
        html = _get(f"{url}/", params={"range": "24h"}).text  # over 6 h: rollups answer
        row = re.search(rf'data-route="{REGRESSING}">(.*?)</tr>', html, re.S).group(1)
        marked = re.findall(r'data-col="([a-z0-9_]+)"[^>]*>\s*<span class="approx"', row)
        assert marked == ["p95_duration_ms", "p95_tokens_out"]
        body = _get(f"{url}/v1/routes/{REGRESSING}/metrics", params={"window": "24h"}).json()
        assert body["now"]["approximate"] is True
        assert overview_values(html)[REGRESSING]["p95_tokens_out"] == body["now"]["p95_tokens_out"]
        exact = _get(f"{url}/", params={"range": "1h"}).text
        assert 'class="approx"' not in exact
