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
        200: {"description": "Ready: `{ready, databases, prefect, nodes: {usable, registered, groups, "
                             "groups_without_node}}`"},
        503: {"description": "Not ready: the same body plus `detail`, naming what is down (the node groups "
                             "without a healthy node among them)"},
    },
)
async def ready() -> JSONResponse:
    """200 when the databases and the Prefect server answer and every node group has a usable node; 503 otherwise."""
    ok, body = await readiness()
    return JSONResponse(body, status_code=200 if ok else 503)
