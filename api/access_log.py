"""Access log of client requests: an ASGI middleware queues rows, a background task writes them in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName
from database.types import utcnow

log = logging.getLogger(__name__)

_BATCH = 200
_FLUSH_SECONDS = 1.0


class AccessLogWriter:
    """Rows wait in memory and are written at most once a second: the request path never waits on SQL."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, row: dict[str, Any]) -> None:
        if len(self._rows) < 50 * _BATCH:  # under a flood, drop log rows rather than memory
            self._rows.append(row)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="access-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        while self._rows:
            batch, self._rows = self._rows[:_BATCH], self._rows[_BATCH:]
            try:
                await run_in_threadpool(_write, batch)
            except Exception:
                log.exception("could not write %d access log rows", len(batch))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            await self.flush()


def _write(rows: list[dict[str, Any]]) -> None:
    with session_scope(DatabaseName.CLIENT) as session:
        client_repo.add_access_logs(session, rows)


class AccessLogMiddleware:
    """Records method, path, status, duration and client of each /api/v2 client request (not admin ones)."""

    def __init__(self, app: ASGIApp, writer: AccessLogWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/v2/") or path.startswith("/api/v2/admin"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            self.writer.add(
                {
                    "client_id": state.get("client_id"),
                    "method": scope.get("method", "")[:8],
                    "path": path[:512],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000),
                    "at": utcnow(),
                }
            )
