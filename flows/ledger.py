"""The flows' side of the job ledger: each call is one short transaction, run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from comfyws.settings import get_settings
from database.engine import session_scope
from database.enums import AttemptStatus, DatabaseName, JobStatus
from database.shared import repositories as repo
from database.shared import transitions
from database.shared.models import Job, JobAttempt
from flows.slots import slot_released

T = TypeVar("T")


async def _in_tx(fn: Callable[[Session], T]) -> T:
    """Run one unit of work in its own transaction in a thread: SQLite may wait on a lock, the loop must not."""

    def work() -> T:
        with session_scope(DatabaseName.SHARED) as session:
            return fn(session)

    return await asyncio.to_thread(work)


async def load_job(job_id: str) -> Job | None:
    return await _in_tx(lambda s: repo.get_job(s, job_id))


async def running_attempt(job_id: str) -> JobAttempt | None:
    """The attempt an earlier run of this flow left running (its worker died), if any."""

    def work(session: Session) -> JobAttempt | None:
        job = repo.get_job(session, job_id)
        if job is None:
            return None
        running = [a for a in job.attempt_rows if a.status == AttemptStatus.RUNNING]
        return running[-1] if running else None

    return await _in_tx(work)


async def attempt_errors(job_id: str) -> list[str]:
    """One line per failed attempt, for the job's final error."""

    def work(session: Session) -> list[str]:
        job = repo.get_job(session, job_id)
        rows = job.attempt_rows if job else []
        return [f"attempt {a.number} on {a.node_id}: {a.error}" for a in rows if a.error]

    return await _in_tx(work)


async def record_values(job_id: str, values: dict[str, Any], seed: int | None) -> None:
    await _in_tx(lambda s: repo.record_values(s, job_id, values=values, seed=seed))


async def start_attempt(job_id: str, *, node_id: str, prompt_id: str) -> int | None:
    """A new attempt on the node the job claimed; None (nothing written) when the job no longer holds that slot
    (a cancel came first): its prompt must not be sent."""

    def work(session: Session) -> int | None:
        if not repo.mark_running(session, job_id, node_id=node_id, prompt_id=prompt_id):
            return None
        return repo.start_attempt(session, job_id, node_id=node_id, prompt_id=prompt_id).id

    return await _in_tx(work)


async def finish_attempt(
    attempt_id: int, status: AttemptStatus, *, error: str | None = None, execution_seconds: float | None = None
) -> None:
    await _in_tx(
        lambda s: repo.finish_attempt(
            s, attempt_id, status=status, error=error, execution_seconds=execution_seconds
        )
    )


async def release_node(job_id: str) -> None:
    """Give the node slot back after a failed attempt: the job waits for its next node."""
    await _in_tx(lambda s: repo.release_node(s, job_id))
    slot_released()


async def update_progress(job_id: str, *, step: int, total: int) -> None:
    await _in_tx(lambda s: repo.update_progress(s, job_id, step=step, total=total))


async def add_result(job_id: str, **fields: Any) -> None:
    await _in_tx(lambda s: repo.add_result(s, job_id, **fields))


async def finish(job_id: str, status: JobStatus, *, error: str | None = None) -> JobStatus | None:
    """Move the job to a final state; the state it ended in, or None when it already was final (a second run
    changes nothing). A job being cancelled ends `cancelled` whatever its run did meanwhile."""

    def work(session: Session) -> JobStatus | None:
        if status is JobStatus.COMPLETED:
            done = repo.mark_completed(session, job_id)
        elif status is JobStatus.FAILED:
            done = repo.mark_failed(session, job_id, error or "failed")
        else:
            done = repo.mark_cancelled(session, job_id)
        if not done:
            # Refused: the job is final already, or `cancelling` (then it ends cancelled, whatever the run did).
            cancelling = frozenset({JobStatus.CANCELLING})
            if not transitions.move(session, job_id, JobStatus.CANCELLED, only_from=cancelling):
                return None
        ended = status if done else JobStatus.CANCELLED
        if ended is JobStatus.CANCELLED:
            dropped.extend(repo.drop_results(session, job_id))  # a cancelled job has no results
        return ended

    dropped: list[str] = []
    changed = await _in_tx(work)
    slot_released()  # a final job holds no node slot
    if dropped:
        await asyncio.to_thread(_delete_files, dropped)
    return changed


def _delete_files(paths: list[str]) -> None:
    outputs_dir = get_settings().outputs_dir
    for path in paths:
        (outputs_dir / path).unlink(missing_ok=True)
