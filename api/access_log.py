"""Access log of client requests: an ASGI middleware queues rows, a background task writes them in batches; and
the redaction of secrets (token query values, Authorization headers, client secrets) from every log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
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
REDACTED = "[redacted]"
_SECRET_VALUE = re.compile(
    r"(?i)\b((?:access_|refresh_|registration_|node_)?token|client_secret|secret|password)=([^&\s\"'#]+)"
)
_SECRET_JSON = re.compile(
    r"(?i)(\"(?:(?:access_|refresh_|registration_|node_)?token|client_secret|password)\"\s*:\s*\")[^\"]*"
)
_CREDENTIALS = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """The text with secret values replaced: `token=...` in URLs, JSON secrets, Bearer/Basic credentials."""
    text = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _SECRET_JSON.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _CREDENTIALS.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and string arguments (uvicorn logs a WebSocket's full URL, query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_FILTER = RedactingFilter()


def redact_logs() -> None:
    """Put the filter on the loggers the API writes through and on their handlers (handler filters also see the
    records other loggers propagate up); idempotent."""
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for target in [logger, *logger.handlers]:
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)
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
