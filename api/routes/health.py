"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.services.health import readiness

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    responses={
        200: {"description": "Ready: `{databases, prefect, nodes}`"},
        503: {"description": "Not ready: the same body, naming what is down"},
    },
)
async def ready() -> JSONResponse:
    """200 when the databases, the Prefect server and at least one node are usable; 503 otherwise."""
    ok, body = await readiness()
    return JSONResponse(body, status_code=200 if ok else 503)
