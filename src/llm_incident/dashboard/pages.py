"""The dashboard's HTTP pages (HTML, kept out of the OpenAPI document): `/` overview,
`/routes/{route}`, `/incidents`, `/incidents/{n}`, `/login`, `/logout`.

A route name may hold any character: links quote it whole (`quote(route, safe='')`, `/` as `%2F`),
and `/routes/{route:path}` takes the rest of the path, so a name with `/` still matches.

Every page but the login form needs a `read` key (bearer header or session cookie) unless
`LLM_INCIDENT_DASHBOARD_PUBLIC=true`; a browser without one is sent to the login form."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import Services, services
from llm_incident.apikeys import KeyIdentity
from llm_incident.dashboard import svg
from llm_incident.dashboard.auth import COOKIE, SCOPE, SESSION_SECONDS, Sessions
from llm_incident.dashboard.incident_page import incident_page, list_incidents
from llm_incident.dashboard.overview import COLUMNS, SORTS, overview_rows, sort_rows
from llm_incident.dashboard.ranges import RANGES, pick
from llm_incident.dashboard.route_page import route_page
from llm_incident.incidents.service import IncidentError
from llm_incident.metrics.compare import fmt
from llm_incident.metrics.windows import format_span

router = APIRouter(include_in_schema=False)
MAX_LOGIN_BYTES = 4096
PUBLIC = KeyIdentity("public", frozenset({SCOPE}))


@cache
def templates() -> Environment:
    env = Environment(loader=PackageLoader("llm_incident.dashboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.globals.update(fmt=fmt, line_chart=svg.line_chart, sparkline=svg.sparkline,
                       ranges=list(RANGES), columns=COLUMNS, quote=quote,
                       format_span=format_span)
    env.filters["word"] = lambda v: "none" if v is None else str(v).lower() if isinstance(v, bool) else v
    return env


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                                   "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff"})


def _sessions(request: Request) -> Sessions:
    return request.app.state.dashboard_sessions


async def _viewer(request: Request) -> KeyIdentity | Response:
    """Who is looking, or the answer to give instead (a redirect to the login form, or 401/403)."""
    svc = services(request)
    if svc.settings.dashboard_public:
        return PUBLIC
    header = request.headers.get("authorization", "")
    method, _, key = header.partition(" ")
    if method.lower() == "bearer" and key.strip():
        def by_key() -> KeyIdentity | None:
            with svc.db.read() as session:
                return svc.keys.identify(session, key.strip())
        identity = await run_in_threadpool(by_key)
        if identity is None:
            return _page("denied.html", 401, message="invalid or revoked API key")
    else:
        digest = _sessions(request).key_hash(request.cookies.get(COOKIE))
        identity = None
        if digest is not None:
            def by_hash() -> KeyIdentity | None:
                with svc.db.read() as session:
                    return _sessions(request).identify_hash(session, digest)
            identity = await run_in_threadpool(by_hash)
        if identity is None:
            target = _raw_target(request)
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if SCOPE not in identity.scopes:
        return _page("denied.html", 403, message=f"API key {identity.name!r} lacks the `read` scope")
    return identity


def _raw_target(request: Request) -> str:
    """The path and query as the browser sent them (still quoted: a route's `%2F`, `%3F`, `%23`
    must survive the trip through the login form)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.url.path)
    return path + (f"?{request.url.query}" if request.url.query else "")


def _context(request: Request, who: KeyIdentity, **extra: Any) -> dict[str, Any]:
    svc: Services = services(request)
    return {"who": who, "public": svc.settings.dashboard_public,
            "refresh": svc.settings.dashboard_refresh_seconds, "now": svc.clock(), **extra}


@router.get("/")
async def overview(request: Request, range: str | None = None, sort: str = "route",  # noqa: A002
                   desc: int = 0) -> Response:
    who = await _viewer(request)
    if isinstance(who, Response):
        return who
    svc, rng = services(request), pick(range)
    key = sort if sort in SORTS else "route"

    def build() -> list[Any]:
        with svc.db.read() as session:
            return sort_rows(overview_rows(session, now=svc.clock(), rng=rng), key, bool(desc))
    rows = await run_in_threadpool(build)
    return _page("overview.html", **_context(request, who, rows=rows, range=rng, sort=key,
                                              desc=bool(desc)))


@router.get("/routes/{route:path}")
async def route(request: Request, route: str, range: str | None = None,  # noqa: A002
                filter: str | None = None) -> Response:  # noqa: A002 - the query name
    who = await _viewer(request)
    if isinstance(who, Response):
        return who
    svc, rng = services(request), pick(range)

    def build() -> Any:
        with svc.db.read() as session:
            return route_page(session, route, now=svc.clock(), rng=rng, filter_text=filter)
    page = await run_in_threadpool(build)
    status = 400 if page.filter_error else 200
    return _page("route.html", status, **_context(request, who, page=page, range=rng))


@router.get("/incidents")
async def incidents(request: Request) -> Response:
    who = await _viewer(request)
    if isinstance(who, Response):
        return who
    svc = services(request)

    def build() -> list[Any]:
        with svc.db.read() as session:
            return list_incidents(session)
    rows = await run_in_threadpool(build)
    return _page("incidents.html", **_context(request, who, incidents=rows))


@router.get("/incidents/{number}")
async def incident(request: Request, number: int) -> Response:
    who = await _viewer(request)
    if isinstance(who, Response):
        return who
    svc = services(request)

    def build() -> Any:
        with svc.db.read() as session:
            try:
                return incident_page(session, number, now=svc.clock())
            except IncidentError:
                return None
    page = await run_in_threadpool(build)
    if page is None:
        return _page("denied.html", 404, message=f"there is no incident #{number}")
    return _page("incident.html", **_context(request, who, page=page))


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never `//host` or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    return _page("login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    body = await request.body()
    form = parse_qs(body[:MAX_LOGIN_BYTES].decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    svc = services(request)

    def check() -> KeyIdentity | None:
        with svc.db.read() as session:
            return svc.keys.identify(session, key) if key else None
    identity = await run_in_threadpool(check)
    if identity is None or SCOPE not in identity.scopes:
        error = ("that key is not valid (or was revoked)" if identity is None
                 else f"key {identity.name!r} lacks the `read` scope")
        return _page("login.html", 401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, _sessions(request).cookie_for(key), max_age=SESSION_SECONDS,
                        httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        path="/")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages from `app` (its settings in `app.state.services`)."""
    app.state.dashboard_sessions = Sessions.from_settings(app.state.services.settings)
    app.router.routes.extend(router.routes)  # as they are: paths stay visible to `app.routes`
