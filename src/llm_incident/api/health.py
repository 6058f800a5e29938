"""`GET /healthz` (liveness + database reachability) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from llm_incident import __version__
from llm_incident.api.deps import services
from llm_incident.api.schemas import Health, HealthDown

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=None,
            responses={200: {"model": Health}, 503: {"model": HealthDown, "description": "database down"}})
def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 otherwise; says whether this process runs the jobs."""
    svc = services(request)
    try:
        with svc.db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any DB failure means unhealthy
        return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
    scheduler = getattr(request.app.state, "scheduler", None)
    return JSONResponse({"status": "ok", "version": __version__, "database": svc.db.backend,
                         "scheduler": scheduler.status() if scheduler else "off"})


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(request: Request) -> Response:
    """The service's own metrics for Prometheus (requests, ingest counts, jobs)."""
    svc = services(request)
    return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
