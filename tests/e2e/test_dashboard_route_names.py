"""Route names with `/`, space, `%`, `#`, `?`, `&` and unicode through the real server (both
backends): every link to a route page (overview, incidents, the route page's own range links and
filter form, the login round trip, the Slack links of LLM_INCIDENT_DASHBOARD_URL) reaches that
route's page, not a 404 or a neighbour's."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape, unescape
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.commands.links import DashboardLinks
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents.service import StartRequest, start_incident
from tests.dashboard_seed import NOW
from tests.support import live_server, settings_for

READ_KEY = "read-key-0123456789"
ODD = "support/reply v2 100% #1? a&b ünïcødé/日本"
NEIGHBOURS = ("support", "support/reply")  # prefixes of ODD: a wrong match would show these


def _seed(db) -> None:
    events = [{"event_id": f"{route}-{i}", "route": route, "ts": (NOW - timedelta(minutes=i + 0.5)).isoformat(),
               "model": "gpt-4o-mini", "env": "prod", "tokens_in": 10, "tokens_out": 100 + i,
               "duration_ms": 300.0 + i, "status": "flagged" if i % 3 == 0 else "ok",
               "prompt_id": "p1"}
              for route in (ODD, *NEIGHBOURS) for i in range(30)]
    with db.write() as session:
        assert ingest_events(session, events, now=NOW).accepted == len(events)
        start_incident(session, StartRequest(commander="U1", symptom="odd names", routes=(ODD,)),
                       now=NOW - timedelta(minutes=5))


@pytest.fixture
def site(db):
    _seed(db)
    settings = settings_for(db, api_keys=[f"read:{READ_KEY}"])
    with live_server(create_app(settings, database=db, clock=lambda: NOW)) as url:
        yield url


def _get(url: str, **kw) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=30, **kw)


def _route_hrefs(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="(/routes/[^"]*)"', html)]


def _assert_odd_page(answer: httpx.Response) -> None:
    assert answer.status_code == 200, (answer.url, answer.status_code)
    html = answer.text
    assert f"<h1>{escape(ODD, quote=False)}</h1>" in html
    assert 'id="unknown-route"' not in html  # the route was found, whole
    assert html.count('<circle class="pt"') > 0


def test_every_link_to_an_odd_route_reaches_its_page(site):
    overview = _get(f"{site}/").text
    odd = [h for h in _route_hrefs(overview) if unquote(urlsplit(h).path) == f"/routes/{ODD}"]
    assert len(odd) == 1 and "#" not in odd[0] and "?" not in odd[0].split("?range=")[0]
    page = _get(site + odd[0])
    _assert_odd_page(page)
    for href in _route_hrefs(page.text):  # the range links
        _assert_odd_page(_get(site + href))
    action = unescape(re.search(r'<form class="filter" method="get" action="([^"]+)"', page.text)[1])
    found = _get(site + action, params={"range": "1h", "filter": "tokens_out >= 128"})
    _assert_odd_page(found)
    shown = [unescape(e) for e in re.findall(r'data-event-id="([^"]+)"', found.text)]
    assert shown == [f"{ODD}-28", f"{ODD}-29"]  # newest first
    for listing in ("/incidents", "/incidents/1"):
        (href,) = _route_hrefs(_get(site + listing).text)
        _assert_odd_page(_get(site + href))
    for window in (None, "24h"):  # the Slack links (LLM_INCIDENT_DASHBOARD_URL = this server)
        _assert_odd_page(_get(DashboardLinks(site + "/").route(ODD, window)))
    for route in NEIGHBOURS:
        neighbour = _get(DashboardLinks(site).route(route)).text
        assert f"<h1>{route}</h1>" in neighbour and 'id="unknown-route"' not in neighbour


def test_the_login_round_trip_keeps_an_odd_route(site):
    url = DashboardLinks(site).route(ODD, "6h")
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        first = browser.get(url)
        assert first.status_code == 303
        target = unquote(first.headers["location"].removeprefix("/login?next="))
        assert target == url.removeprefix(site)  # still quoted: `%2F`, `%23`, `%3F` intact
        login = browser.post(f"{site}/login", data={"key": READ_KEY, "next": target})
        assert login.status_code == 303 and login.headers["location"] == target
        page = browser.get(site + target)
    _assert_odd_page(page)
    assert re.search(r'\?range=6h"\s*class="on"', page.text)  # the range survived too
