"""Keeps every running batch fed: a batch whose feeder flow run died (worker killed, Prefect restarted) gets a
new one. Items never run twice: each item's flow run is created with the job id as its idempotency key."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from api.services.batches import start_feeder
from comfyws.config import get_config
from database.engine import session_scope
from database.enums import DatabaseName
from database.shared import batches as batch_repo
from database.types import utcnow

log = logging.getLogger(__name__)


class BatchKeeper:
    """A background loop of the API: every few seconds, a new feeder for each batch whose feeder is silent."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        stale = get_config().batches.feeder_stale_s
        while True:
            try:
                for batch_id, group, number in await run_in_threadpool(_orphans, stale):
                    log.info("batch %s: its feeder is silent; starting feeder %d", batch_id, number)
                    await start_feeder(batch_id, group, number)
            except Exception:  # the keeper must not die: a database hiccup is retried next round
                log.exception("batch keeper round failed")
            await asyncio.sleep(min(5.0, stale / 3))


def _orphans(stale: float) -> list[tuple[str, str, int]]:
    with session_scope(DatabaseName.SHARED) as session:
        silent = batch_repo.orphaned(session, seen_before=utcnow() - timedelta(seconds=stale))
        return [(b.id, b.node_group, batch_repo.next_feeder(session, b.id)) for b in silent]
