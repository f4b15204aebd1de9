"""WebSocket plumbing: authenticate a socket, send the current state, then relay bus events until it closes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api.deps import admin_from_token, client_from_token, require_role
from api.errors import ApiError, Unauthorized
from api.revocation import Identity
from api.schemas import ResultInfo, Task
from api.services.views import result_url
from database.engine import session_scope
from database.enums import DatabaseName
from workers.progress import ProgressBus, Subscription, job_of

CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
_TOKEN_WAIT_SECONDS = 10.0


def status_message(task: Task) -> dict[str, Any]:
    return {
        "type": "status",
        "task_id": task.task_id,
        "status": task.status.value,
        "queue_position": task.queue_position,
        "node_id": task.node_id,
        "error": task.error,
        "progress": task.progress,
    }


def result_message(task: Task) -> dict[str, Any] | None:
    """`{"type": "result", "task_id", "results": [...]}` for a completed job (the files' URLs), else None."""
    if task.status.value != "completed":
        return None
    return {"type": "result", "task_id": task.task_id, "results": [r.model_dump() for r in task.results]}


def to_message(event: dict[str, Any]) -> dict[str, Any]:
    """A bus event as clients see it: named by task_id, without routing fields."""
    message = {k: v for k, v in event.items() if k not in ("client_id", "job_id")}
    message["task_id"] = job_of(event)
    return message


def to_messages(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages one bus event becomes: itself, and after a job's completion a `result` message naming its
    files by URL (the flow's event names them by their place in the outputs folder, which clients never see)."""
    message = to_message(event)
    stored = message.get("results")
    if message.get("type") != "status" or message.get("status") != "completed" or not isinstance(stored, list):
        return [message]
    try:
        results = [_public_result(message["task_id"], item) for item in stored]
    except (KeyError, TypeError, ValueError):  # not the shape flows publish: relay the event as it came
        return [message]
    message["results"] = results
    return [message, {"type": "result", "task_id": message["task_id"], "results": results}]


def _public_result(task_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    index = int(stored["index"])
    return ResultInfo(
        index=index,
        url=result_url(task_id, index),
        filename=stored["filename"],
        kind=stored["kind"],
        content_type=stored["content_type"],
        size=stored["size"],
        sha256=stored["sha256"],
    ).model_dump()


async def reject(websocket: WebSocket, error: ApiError, code: int) -> None:
    """Say why in a JSON message first: browsers do not show close reasons reliably."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.send_json({"type": "error", "error": error.code, "detail": error.detail})
        await websocket.close(code=code, reason=error.code)


async def _token(websocket: WebSocket, query_token: str | None) -> str:
    if query_token:
        return query_token
    try:
        first = await asyncio.wait_for(websocket.receive_json(), timeout=_TOKEN_WAIT_SECONDS)
    except (TimeoutError, ValueError, KeyError) as exc:
        raise Unauthorized('send the token as ?token= or as a first message {"token": ...}') from exc
    token = first.get("token") if isinstance(first, dict) else None
    if not isinstance(token, str):
        raise Unauthorized('the first message must be {"token": ...}')
    return token


async def authenticate_client(websocket: WebSocket, query_token: str | None) -> Identity | None:
    """The client behind the socket's token, or None after rejecting the socket."""
    try:
        token = await _token(websocket, query_token)
        return await run_in_threadpool(_client_identity, token)
    except ApiError as exc:
        await reject(websocket, exc, CLOSE_UNAUTHORIZED)
        return None


async def authenticate_admin(websocket: WebSocket, query_token: str | None) -> Identity | None:
    """The admin behind the socket's token (any role the permission table allows the feed), or None."""
    try:
        token = await _token(websocket, query_token)
        return await run_in_threadpool(_admin_identity, token, websocket.url.path)
    except ApiError as exc:
        await reject(websocket, exc, CLOSE_UNAUTHORIZED)
        return None


def _client_identity(token: str) -> Identity:
    with session_scope(DatabaseName.CLIENT) as session:
        client = client_from_token(session, token)
        return Identity("client", client.id, client.secret_version)


def _admin_identity(token: str, path: str) -> Identity:
    with session_scope(DatabaseName.ADMIN) as session:
        user = admin_from_token(session, token)
        require_role(user, "WS", path)
        return Identity("admin", user.username, user.token_version)


async def relay(websocket: WebSocket, subscription: Subscription) -> None:
    """Send each event the subscription receives until the peer leaves."""
    reader = asyncio.create_task(_wait_for_close(websocket))
    try:
        while True:
            getter = asyncio.create_task(subscription.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                return
            for message in to_messages(getter.result()):
                await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()


async def _wait_for_close(websocket: WebSocket) -> None:
    """Read (and ignore) client messages; returns when the peer disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def bus_of(websocket: WebSocket) -> ProgressBus:
    bus: ProgressBus = websocket.app.state.bus
    return bus
