"""The dashboard in a real browser: Debian's headless Chromium driven by playwright (pointed at
the system executable; playwright's own browsers are never downloaded). Every request the pages
make is intercepted: anything not for the test server is refused and fails the test. Screenshots
of the overview, a route page and an incident page go to tests/artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.dashboard.ranges import RANGES
from llm_incident.metrics.compare import fmt
from tests.dashboard_seed import NOW, QUIET, REGRESSING, STEADY, seed
from tests.support import live_server, settings_for

READ_KEY = "read-key-browser-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """Debian's chromium; skip without one (fail under CI=true, which installs it)."""
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if found is None:
        message = "no chromium on PATH (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: .ci/run installs it)")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def _serve(db, **overrides):
    settings = settings_for(db, api_keys=[f"read:{READ_KEY}"], **overrides)
    return live_server(create_app(settings, database=db, clock=lambda: NOW))


@pytest.fixture
def site(sqlite_db):
    seed(sqlite_db)
    with _serve(sqlite_db) as url:
        yield url


class Guarded:
    """A browser context that lets requests reach only `base` and records any other."""

    def __init__(self, browser, base: str, **options) -> None:
        self.base, self.left = base, []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _route(self, route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == urlsplit(self.base).netloc:
            route.continue_()
        else:
            self.left.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()
        assert self.left == [], f"requests that would have left the host: {self.left}"
        assert self.requests and all(u.startswith(self.base) for u in self.requests)


@pytest.fixture
def guarded(browser, site):
    opened = []

    def open_(**options) -> Guarded:
        g = Guarded(browser, site, **options)
        opened.append(g)
        return g
    yield open_
    for g in opened:
        g.close()


def login(g: Guarded, target: str = "/") -> None:
    g.page.goto(g.base + target)
    assert urlsplit(g.page.url).path == "/login"
    g.page.fill("#key", READ_KEY)
    with g.page.expect_navigation():
        g.page.click("button[type=submit]")


def _api(site: str, route: str, window: str) -> dict:
    answer = httpx.get(f"{site}/v1/routes/{route}/metrics", params={"window": window},
                       headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=30)
    return answer.json()["now"]


def test_login_is_required_and_returns_to_the_page_asked_for(guarded, site):
    g = guarded()
    login(g, f"/routes/{REGRESSING}?range=6h")
    assert g.page.url == f"{site}/routes/{REGRESSING}?range=6h"
    assert g.page.locator("h1").inner_text() == REGRESSING
    cookie = next(c for c in g.context.cookies() if c["name"] == "llm_incident_session")
    assert cookie["httpOnly"] and READ_KEY not in cookie["value"]
    assert g.page.evaluate("document.cookie") == ""  # invisible to scripts
    with g.page.expect_navigation():
        g.page.click("text=Log out")
    g.page.goto(site + "/")
    assert urlsplit(g.page.url).path == "/login"


def test_a_wrong_key_is_told_so_on_the_form(guarded):
    g = guarded()
    g.page.goto(g.base + "/")
    g.page.fill("#key", "not-a-key")
    g.page.click("button[type=submit]")
    assert "not valid" in g.page.locator(".error").inner_text()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_overview_lists_seeded_routes_with_the_metrics_api_numbers(guarded, site, javascript):
    g = guarded(java_script_enabled=javascript)
    login(g)
    rows = g.page.locator("tr.route-row")
    assert [rows.nth(i).get_attribute("data-route") for i in range(rows.count())] == [
        QUIET, STEADY, REGRESSING]
    for route in (STEADY, REGRESSING):
        api = _api(site, route, "1h")
        row = g.page.locator(f'tr[data-route="{route}"]')

        def shown(col: str) -> str:
            return row.locator(f'td[data-col="{col}"] .value').inner_text()
        assert shown("calls") == fmt(api["calls"], "count")
        assert shown("flagged_rate") == fmt(api["flagged_rate"], "rate")
        assert shown("p95_duration_ms") == fmt(api["p95_duration_ms"], "ms")
        assert shown("p95_tokens_out") == fmt(api["p95_tokens_out"], "count")
        assert shown("cost_per_hour") == fmt(api["total_cost_usd"], "usd")
        spark = row.locator("svg.spark")
        assert spark.bounding_box()["width"] > 0 and int(spark.get_attribute("data-points")) > 0
    assert "regressed" in g.page.locator(f'tr[data-route="{REGRESSING}"]').get_attribute("class")
    with g.page.expect_navigation():
        g.page.click('th a[data-sort="p95_tokens_out"]')  # largest first …
    assert rows.first.get_attribute("data-route") == REGRESSING
    with g.page.expect_navigation():
        g.page.click('th a[data-sort="p95_tokens_out"]')  # … then smallest
    assert rows.first.get_attribute("data-route") == STEADY
    if javascript:
        ARTIFACTS.mkdir(exist_ok=True)
        g.page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)


def test_route_page_draws_its_charts(guarded, site):
    g = guarded()
    login(g, f"/routes/{REGRESSING}?range=6h")
    charts = g.page.locator("div.chart-box svg.chart")
    assert charts.count() == 4
    buckets = RANGES["6h"].buckets
    for i in range(4):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100
        dots = chart.locator("circle.pt").count()
        assert dots == 25 <= buckets  # 24 five-minute buckets of calls + the oldest call's
        line = chart.locator("polyline.line").get_attribute("points").split()
        assert len(line) == dots
    assert g.page.locator("svg.chart line.mark-change").count() == 4
    ARTIFACTS.mkdir(exist_ok=True)
    g.page.screenshot(path=str(ARTIFACTS / "dashboard-route.png"), full_page=True)


def test_the_filter_box_finds_events_and_shows_a_bad_filters_error(guarded):
    g = guarded()
    login(g, f"/routes/{REGRESSING}")
    assert g.page.locator("tr.event").count() == 15
    g.page.fill("#filter", "tokens_out >= 955 AND output_excerpt contains 'answer'")
    with g.page.expect_navigation():
        g.page.press("#filter", "Enter")
    ids = g.page.locator("tr.event").evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    assert ids == [f"{REGRESSING}-{i}" for i in range(55, 60)]
    g.page.fill("#filter", "tokens_out >")
    with g.page.expect_navigation():
        g.page.press("#filter", "Enter")
    error = g.page.locator("#filter-error")
    assert error.is_visible() and error.inner_text().startswith("bad filter at")
    assert g.page.input_value("#filter") == "tokens_out >"
    assert g.page.locator("tr.event").count() == 0


def test_incident_page_shows_evidence_and_the_rendered_postmortem(guarded):
    g = guarded()
    login(g, "/incidents")
    with g.page.expect_navigation():
        g.page.click('a[href="/incidents/1"]')
    assert g.page.locator("#postmortem h1").inner_text().startswith("Postmortem — incident #1")
    assert g.page.locator("#postmortem table").count() > 0
    labels = g.page.locator("#evidence tr[data-event-id] .badge").all_inner_texts()
    assert labels == ["bad", "good"]
    assert g.page.locator("#postmortem b").count() == 0  # the symptom's markup stays text
    ARTIFACTS.mkdir(exist_ok=True)
    g.page.screenshot(path=str(ARTIFACTS / "dashboard-incident.png"), full_page=True)


def test_a_public_dashboard_needs_no_login(browser, tmp_path):
    from tests.support import database_for

    with database_for("sqlite", tmp_path) as db:
        seed(db)
        with _serve(db, dashboard_public=True) as url:
            g = Guarded(browser, url)
            g.page.goto(url + "/")
            assert urlsplit(g.page.url).path == "/"
            assert g.page.locator("tr.route-row").count() == 3
            g.close()
