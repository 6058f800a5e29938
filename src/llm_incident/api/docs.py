"""The API's own documentation: `/docs` (Swagger UI served from the installed `fastapi-offline`
package, never a CDN) and the declared error answers every endpoint shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"


class ErrorAnswer(BaseModel):
    """Every error: a message that says what to fix."""

    error: str


_WHAT = {
    400: "bad request: malformed JSON, a bad or unknown parameter, a value out of range",
    401: "missing, invalid or revoked API key",
    403: "the API key lacks the scope this endpoint needs",
    404: "no such incident",
    409: "version conflict (compare-and-set)",
    413: "body or batch too large",
    415: "unsupported Content-Type or Content-Encoding",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error codes an endpoint answers, all `{"error": "…"}`."""
    return {code: {"model": ErrorAnswer, "description": _WHAT[code]} for code in codes}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` declaring a JSON request body of `model` for a handler that reads it raw
    (gzip, size limits, our own error messages)."""
    return request_body(inline_schema(model))


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its `$defs` (enums, nested models; none recursive) inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _without_422(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's automatic 422 answers: bad parameters are 400 `{"error"}` here."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


NO_NUL = "^[^\\u0000]*$"


def _no_nul_in_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """Say in every string path/query parameter what `check_params` enforces: no NUL."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                variants = [schema, *schema.get("anyOf", [])]
                variants += [v["items"] for v in variants if isinstance(v.get("items"), dict)]
                for variant in variants:
                    if variant.get("type") == "string" and "pattern" not in variant:
                        variant["pattern"] = NO_NUL
    return document


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` from the package's assets under `ASSETS_URL`; make
    `/openapi.json` say 400 where FastAPI would say 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _no_nul_in_parameters(_without_422(generate()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} – API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )
