"""`GET /v1/instances`: the SDK instances that reported with their long-poll in the last 24 hours — who
they are, which routes they guard, which control version each holds against the current one, and which
are stale."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import needs, services
from llm_incident.api.docs import errors
from llm_incident.bounds import Text
from llm_incident.controls.instances import ClientInstance, applied_version, is_stale, list_instances
from llm_incident.controls.service import get_controls
from llm_incident.controls.values import DEFAULT_ENV

router = APIRouter(dependencies=[needs("read")], responses=errors(400, 401, 403), tags=["controls"])
LISTED_FOR = timedelta(hours=24)


class AppliedOut(BaseModel):
    route: str
    version: int | None = Field(description="the control version the instance holds; null: not reported yet")
    applied_at: datetime | None = Field(description="when it loaded that version (server clock)")
    current_version: int = Field(description="the version in force on the server")
    up_to_date: bool


class InstanceOut(BaseModel):
    id: str
    name: str
    host: str
    pid: int | None
    version: str = Field(description="the client package's version")
    env: str | None = Field(description="the env it reads; null: every env")
    wait_seconds: float
    routes: list[str] = Field(description="the routes it guards")
    applied: list[AppliedOut]
    first_seen: datetime
    last_seen: datetime
    stale: bool = Field(description="not heard of for its long-poll wait plus 10 s")


class RouteApplicationOut(BaseModel):
    route: str
    env: str
    current_version: int
    instances: int
    up_to_date: int
    stale: int


class InstancesAnswer(BaseModel):
    instances: list[InstanceOut]
    count: int
    routes: list[RouteApplicationOut] = Field(description="per route: how many instances hold the current "
                                                          "version (the thread's \"3/3 applied\")")


def instance_json(row: ClientInstance, now: datetime, current: dict[tuple[str, str], int]) -> dict[str, Any]:
    env = row.env or DEFAULT_ENV
    applied = []
    for route in row.routes or []:
        held = applied_version(row, route)
        version = current[(route, env)]
        applied.append({"route": route, "version": held[0] if held else None,
                        "applied_at": held[1].isoformat() if held else None, "current_version": version,
                        "up_to_date": held is not None and held[0] >= version})
    return {"id": row.id, "name": row.name, "host": row.host, "pid": row.pid, "version": row.version,
            "env": row.env, "wait_seconds": row.wait_seconds, "routes": list(row.routes or []),
            "applied": applied, "first_seen": row.first_seen.isoformat(), "last_seen": row.last_seen.isoformat(),
            "stale": is_stale(row, now)}


def route_summary(instances: list[dict[str, Any]], envs: dict[str, str]) -> list[dict[str, Any]]:
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for item in instances:
        for entry in item["applied"]:
            key = (entry["route"], envs[item["id"]])
            row = summary.setdefault(key, {"route": key[0], "env": key[1], "current_version":
                                           entry["current_version"], "instances": 0, "up_to_date": 0, "stale": 0})
            row["instances"] += 1
            row["up_to_date"] += entry["up_to_date"]
            row["stale"] += item["stale"] and not entry["up_to_date"]
    return [summary[k] for k in sorted(summary)]


@router.get("/v1/instances", response_model=None, responses={200: {"model": InstancesAnswer}})
async def get_instances(
    request: Request,
    env: Annotated[Text | None, Query(description="only instances of this env (and those reading every env)")] = None,
    route: Annotated[Text | None, Query(description="only instances guarding this route")] = None,
    stale: Annotated[bool | None, Query(description="only stale (true) or only live (false) instances")] = None,
) -> dict[str, Any]:
    """The instances seen in the last 24 hours, most recently seen first."""
    svc = services(request)

    def read() -> dict[str, Any]:
        now = svc.clock()
        with svc.db.read() as session:
            rows = list_instances(session, env=env, route=route, seen_since=now - LISTED_FOR)
            if stale is not None:
                rows = [r for r in rows if is_stale(r, now) == stale]
            pairs = {(r_, row.env or DEFAULT_ENV) for row in rows for r_ in row.routes or []}
            current = {pair: get_controls(session, *pair).version for pair in pairs}
        items = [instance_json(row, now, current) for row in rows]
        envs = {row.id: row.env or DEFAULT_ENV for row in rows}
        if route is not None:
            for item in items:
                item["applied"] = [a for a in item["applied"] if a["route"] == route]
        return {"instances": items, "count": len(items), "routes": route_summary(items, envs)}

    return await run_in_threadpool(read)
