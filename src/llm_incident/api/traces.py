"""`POST /v1/traces`: OTLP/HTTP spans with `gen_ai.*` attributes become events."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ingest"])
