"""Creates the flow runs of committed jobs in the background, so a busy Prefect server delays jobs but never
loses or doubles one: a busy answer is retried with backoff (the job id is the run's idempotency key), and jobs
left pending by an API that stopped are picked up again when the next one starts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from api import launcher
from api.errors import RunRefused, SchedulerBusy, SchedulerUnavailable
from api.settings import get_api_settings
from database.engine import session_scope
from database.enums import DatabaseName
from database.shared import repositories as ledger
from flows.params import GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class _Item:
    job_id: str
    request: GenerationRequest
    result: asyncio.Future[str]
    answer_by: float  # loop time until which the submitting request still waits for this job
    attempt: int = 0


class Dispatcher:
    """A queue of jobs waiting for their flow run, drained by a few concurrent launchers."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, recover: list[tuple[str, GenerationRequest]]) -> None:
        settings = get_api_settings()
        self._tasks = [asyncio.create_task(self._launcher()) for _ in range(settings.prefect_concurrency)]
        for job_id, request in recover:
            log.info("re-dispatching job %s left pending by an earlier API process", job_id)
            self.submit(job_id, request)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, job_id: str, request: GenerationRequest) -> asyncio.Future[str]:
        """Queue the job; the future gives its flow run id, or the error when Prefect cannot be reached at all."""
        loop = asyncio.get_running_loop()
        item = _Item(job_id, request, loop.create_future(), loop.time() + get_api_settings().launch_wait_s)
        self._queue.put_nowait(item)
        return item.result

    async def _launcher(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._launch(item)
            except Exception as exc:  # a launcher must never die: log, fail the job, go on with the next
                log.exception("dispatching job %s failed", item.job_id)
                await self._give_up(item, exc, f"cannot be dispatched: {type(exc).__name__}: {exc}")

    async def _give_up(self, item: _Item, exc: Exception, reason: str) -> None:
        """A job that no retry can dispatch ends failed with the reason (never pending forever)."""
        try:
            await run_in_threadpool(_mark_failed, item.job_id, reason)
        except Exception:  # the ledger is unreachable: the job stays pending and the next API start retries it
            log.exception("could not mark job %s failed", item.job_id)
        if not item.result.done():
            item.result.set_exception(exc)
            if asyncio.get_running_loop().time() >= item.answer_by:
                item.result.exception()  # nobody waits for it any more: mark it read, no warning at exit

    async def _launch(self, item: _Item) -> None:
        try:
            flow_run_id = await launcher.launch(item.job_id, item.request)
        except SchedulerBusy as exc:
            self._retry_later(item, exc)
            return
        except RunRefused as exc:
            await self._give_up(item, exc, exc.detail)
            return
        except SchedulerUnavailable as exc:
            if asyncio.get_running_loop().time() < item.answer_by:
                # The client is still waiting: the job ends failed and the client gets the 503 saying why.
                await run_in_threadpool(_mark_failed, item.job_id, exc.detail)
                item.result.set_exception(exc)
                return
            self._retry_later(item, exc)  # the client was answered "pending": keep that promise
            return
        await run_in_threadpool(_mark_queued, item.job_id, flow_run_id)
        item.result.set_result(flow_run_id)

    def _retry_later(self, item: _Item, exc: Exception) -> None:
        settings = get_api_settings()
        delay = min(settings.dispatch_retry_s * 2**item.attempt, settings.dispatch_max_retry_s)
        item.attempt += 1
        log.info("job %s waits %.1fs for the scheduler (%s)", item.job_id, delay, exc)
        asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, item)


def _mark_failed(job_id: str, reason: str) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        ledger.mark_failed(session, job_id, reason)


def _mark_queued(job_id: str, flow_run_id: str) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        ledger.mark_queued(session, job_id, flow_run_id)
