"""WebSockets: one job, all of a client's jobs, and the admin feed; and the workers' event intake."""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, WebSocket, status
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError, BadRequest, Unauthorized
from api.live import (
    CLOSE_NOT_FOUND,
    authenticate_admin,
    authenticate_client,
    bus_of,
    reject,
    relay,
    result_message,
    status_message,
)
from api.revocation import tracked
from api.services import jobs
from comfyws.secret_store import internal_token
from database.engine import session_scope
from database.enums import DatabaseName
from workers.progress import INTERNAL_TOKEN_HEADER, ProgressBus

router = APIRouter(tags=["live"])


def _read_task(task_id: str, client_id: str) -> list[dict[str, Any]]:
    """The job's current state as messages: its status, and its results when it has completed."""
    with session_scope(DatabaseName.SHARED) as session:
        task = jobs.get_task(session, task_id, client_id=client_id)
    result = result_message(task)
    return [status_message(task)] if result is None else [status_message(task), result]


@router.websocket("/api/v2/ws/tasks/{task_id}")
async def task_socket(websocket: WebSocket, task_id: str, token: str | None = None) -> None:
    """Live status, progress, previews and results of one of the client's jobs."""
    await websocket.accept()
    identity = await authenticate_client(websocket, token)
    if identity is None:
        return
    client_id = identity.subject
    # Subscribe before reading the state: an event between the two is then queued, not lost.
    async with bus_of(websocket).subscribe(client_id=client_id, job_id=task_id) as subscription:
        try:
            current = await run_in_threadpool(_read_task, task_id, client_id)
        except ApiError as exc:
            await reject(websocket, exc, CLOSE_NOT_FOUND)
            return
        async with tracked(websocket, identity):  # tracked before the first message: a revocation after it bites
            for message in current:
                await websocket.send_json(message)
            await relay(websocket, subscription)


@router.websocket("/api/v2/ws/tasks")
async def tasks_socket(websocket: WebSocket, token: str | None = None) -> None:
    """Live events of all of the client's jobs."""
    await websocket.accept()
    identity = await authenticate_client(websocket, token)
    if identity is None:
        return
    async with bus_of(websocket).subscribe(client_id=identity.subject) as subscription, tracked(websocket, identity):
        await relay(websocket, subscription)


@router.websocket("/api/v2/admin/ws")
async def admin_socket(websocket: WebSocket, token: str | None = None) -> None:
    """Every job's events and node events, for the dashboard."""
    await websocket.accept()
    identity = await authenticate_admin(websocket, token)
    if identity is None:
        return
    async with bus_of(websocket).subscribe(client_id=None) as subscription, tracked(websocket, identity):
        await relay(websocket, subscription)


@router.post("/internal/events", status_code=status.HTTP_202_ACCEPTED, include_in_schema=False)
async def post_event(
    request: Request,
    token: Annotated[str | None, Header(alias=INTERNAL_TOKEN_HEADER)] = None,
) -> dict[str, str]:
    """Workers publish job events here when no Redis is configured: one event, or a list of them in order."""
    if token is None or not hmac.compare_digest(token.encode(), internal_token().encode()):
        raise Unauthorized("internal token required")
    bus: ProgressBus = request.app.state.bus
    for event in await _events(request):
        await bus.publish(event)
    return {"status": "accepted"}


async def _events(request: Request) -> list[dict[str, Any]]:
    # Parsed by hand rather than as a pydantic body: this is the hottest route, and events are opaque here.
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest("body: not valid JSON") from exc
    events = body if isinstance(body, list) else [body]
    if not all(isinstance(event, dict) for event in events):
        raise BadRequest("body: an event object or a list of them")
    return events
