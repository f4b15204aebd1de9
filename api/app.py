"""The FastAPI application: routers, the error handler, and start-up (migrations, admin account, event bus)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from api import handlers, launcher
from api.access_log import AccessLogMiddleware, AccessLogWriter, redact_logs
from api.batch_keeper import BatchKeeper
from api.dispatcher import Dispatcher
from api.revocation import SocketRegistry
from api.routes import admin, auth, batches, health, live, nodes, tasks
from api.services import jobs
from api.services.auth import ensure_admin_account
from api.settings import get_api_settings
from database import migrate
from database.engine import session_scope
from database.enums import DatabaseName
from workers.progress import ProgressBus, redis_url

log = logging.getLogger(__name__)


def _prepare_databases() -> None:
    if get_api_settings().migrate_on_start:
        migrate.init()
    with session_scope(DatabaseName.ADMIN) as session:
        ensure_admin_account(session)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_prepare_databases)
    bus: ProgressBus = app.state.bus
    sockets: SocketRegistry = app.state.sockets
    bus.on_control(sockets.handle_event)
    await bus.start()
    await sockets.start()
    await app.state.access_log.start()
    dispatcher: Dispatcher = app.state.dispatcher
    await dispatcher.start(await run_in_threadpool(jobs.pending_requests))
    await app.state.batch_keeper.start()
    log.info("API ready (progress bus: %s)", bus.backend)
    try:
        yield
    finally:
        await app.state.batch_keeper.stop()
        await dispatcher.stop()
        await app.state.access_log.stop()
        await sockets.stop()
        await bus.stop()
        await launcher.aclose()


def create_app() -> FastAPI:
    settings = get_api_settings()  # a missing (production) or published-default secret stops here, naming it
    app = FastAPI(
        title="ComfyUI Web Service",
        version="2.0",
        description="Generation jobs over ComfyUI nodes, scheduled by Prefect.",
        lifespan=_lifespan,
    )
    redact_logs()  # uvicorn's access and error logs carry WebSocket ?token= values otherwise
    app.state.bus = ProgressBus(redis_url=redis_url())
    app.state.sockets = SocketRegistry()
    app.state.access_log = AccessLogWriter()
    app.state.dispatcher = Dispatcher()
    app.state.batch_keeper = BatchKeeper()
    handlers.install(app)
    for module in (auth, tasks, batches, live, nodes, admin, health):
        app.include_router(module.router)
    app.include_router(batches.admin_router)
    app.include_router(batches.internal_router)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware, writer=app.state.access_log)
    # Only the front ends' origins, never "*": the configured list, plus the default pattern (the UIs' ports).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=settings.cors_pattern(),
        allow_methods=["*"],
        allow_headers=["*"],
    )
    return app
