"""`/v1/keys`: API keys over HTTP for an `admin` key — list, create (the key is shown once), revoke.

The same operations as `llm-incident keys`; keys from LLM_INCIDENT_API_KEYS are not listed here
(they live in the environment, not the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import ApiError, needs, parse_json, read_body, services
from llm_incident.api.docs import errors, json_body
from llm_incident.apikeys import SCOPES, ApiKey, create_key, list_keys, parse_scopes, revoke_key
from llm_incident.bounds import Text
from llm_incident.events.ingest import validation_errors

Scope = Literal["ingest", "read", "controls", "admin"]  # apikeys.SCOPES
router = APIRouter(dependencies=[needs("admin")], responses=errors(401, 403), tags=["keys"])


class KeyIn(BaseModel):
    """What `POST /v1/keys` accepts."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


class KeyOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    hint: str
    created_at: datetime
    revoked_at: datetime | None


class KeysAnswer(BaseModel):
    keys: list[KeyOut]


class CreatedKey(KeyOut):
    key: str = Field(description="the key itself: shown this once, never stored")


assert get_args(Scope) == SCOPES, "keep the API's scope names in step with apikeys.SCOPES"


def key_json(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "scopes": row.scope.split(), "hint": row.hint,
            "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


@router.get("/v1/keys", response_model=None, responses={200: {"model": KeysAnswer}, **errors(400)})
def get_keys(request: Request) -> dict[str, Any]:
    """Every stored key (revoked ones too), oldest first; never the keys themselves."""
    with services(request).db.read() as session:
        return {"keys": [key_json(row) for row in list_keys(session)]}


@router.post("/v1/keys", status_code=201, response_model=None,
             responses={201: {"model": CreatedKey}, **errors(400, 413, 415)},
             openapi_extra=json_body(KeyIn))
async def post_key(request: Request) -> dict[str, Any]:
    """Create a key `{name, scopes}`; the answer holds the key, once."""
    svc = services(request)
    payload = parse_json(await read_body(request, svc.settings.max_body_bytes))
    try:
        wanted = KeyIn.model_validate(payload)
        scopes = parse_scopes(wanted.scopes)
    except ValidationError as exc:
        text = "; ".join(f"{e['field']}: {e['message']}" for e in validation_errors(exc))
        raise ApiError(400, f"invalid key request: {text}") from None
    except ValueError as exc:
        raise ApiError(400, f"invalid key request: scopes: {exc}") from None

    def save() -> dict[str, Any]:
        with svc.db.write() as session:
            row, plain = create_key(session, wanted.name, now=svc.clock(), scopes=scopes)
            return {**key_json(row), "key": plain}

    return await run_in_threadpool(save)


@router.delete("/v1/keys/{key}", response_model=None,
               responses={200: {"model": KeysAnswer}, **errors(400, 404)})
def delete_key(request: Request,
               key: Annotated[Text, Path(description="the key's id or name", min_length=1,
                                         max_length=200)]) -> dict[str, Any]:
    """Revoke the active key(s) with this id or name; 404 when there is none."""
    svc = services(request)
    with svc.db.write() as session:
        revoked = revoke_key(session, key, now=svc.clock())
        if not revoked:
            raise ApiError(404, f"no active key with id or name {key!r}")
        return {"keys": [key_json(row) for row in revoked]}
