"""`python -m deployments.prefect_server server start ...`: Prefect's own CLI, with two changes for busy servers.

1. Prefect's server opens write transactions on SQLite as DEFERRED: a transaction that reads, then writes after
   another connection committed, fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT; the busy timeout
   does not apply). The server answers 503 and Prefect's client sleeps 2 s, then 4 s, before it tries again:
   under a steady stream of jobs most runs paid those seconds. Taking the write lock when the transaction
   begins (IMMEDIATE) makes writers wait their turn on the busy timeout instead, a few milliseconds. Reads
   outside explicit transactions are untouched; PostgreSQL servers are untouched.
2. A 503 that still happens (any database) carries `Retry-After: 0.25`, which Prefect's client honours instead
   of its exponential 2 s, 4 s, 8 s... pause.
3. Task-run records are written in batches (up to 100, at least every second) unless the environment says
   otherwise: by default the task-run recorder writes every task-run event on its own, one bulk insert (SQL
   compilation included) each, the largest single share of the server's CPU per job. (The event persister's
   own defaults, 20 events or 5 s, already batch: flushing it every second made single runs slower.)

Everything else is `prefect` as shipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

RETRY_AFTER_S = 0.25
BATCHED_RECORDING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction
    from starlette.requests import Request
    from starlette.responses import Response


def server_command(*, host: str, port: int) -> list[str]:
    """The command line that starts a Prefect server this way (what `comfyws run`, tests and benches use)."""
    return [sys.executable, "-m", __name__, "server", "start", "--host", host, "--port", str(port)]


def take_sqlite_write_locks_up_front() -> None:
    """Make every explicit transaction of Prefect's SQLite configuration `BEGIN IMMEDIATE`."""
    # Imported here: the server's modules are heavy, and `server_command` is wanted by light callers.
    from prefect.server.database.configurations import SQLITE_BEGIN_MODE, AioSqliteConfiguration

    @asynccontextmanager
    async def begin_transaction(
        self: AioSqliteConfiguration, session: AsyncSession, with_for_update: bool = False
    ) -> AsyncGenerator[AsyncSessionTransaction, None]:
        token = SQLITE_BEGIN_MODE.set("IMMEDIATE")
        try:
            async with session.begin() as transaction:
                await session.connection()  # BEGIN IMMEDIATE now, on this transaction's own connection
                # A session opened inside this one (the server reads that way while it emits events) begins as
                # stock Prefect's would: IMMEDIATE there would wait for the lock held here, a deadlock.
                inner = SQLITE_BEGIN_MODE.set("DEFERRED")
                try:
                    yield transaction
                finally:
                    SQLITE_BEGIN_MODE.reset(inner)
        finally:
            SQLITE_BEGIN_MODE.reset(token)

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def ask_for_quick_retries() -> None:
    """Add `Retry-After` to the 503 answers of Prefect's catch-all exception handler."""
    from prefect.server.api import server

    shipped = server.custom_internal_exception_handler

    async def handler(request: Request, exc: Exception) -> Response:
        response: Any = await shipped(request, exc)
        if response.status_code == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response  # type: ignore[no-any-return]

    server.custom_internal_exception_handler = handler  # type: ignore[assignment]


def main() -> None:
    for name, value in BATCHED_RECORDING.items():  # before Prefect reads its settings
        os.environ.setdefault(name, value)
    take_sqlite_write_locks_up_front()
    ask_for_quick_retries()
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()
