"""The job state machine: the one place that writes a job's status, as compare-and-set updates of its row.

Every change is `UPDATE jobs SET status = :to ... WHERE id = :id AND status IN (:allowed)`: two writers racing
(a slot claim and a cancel, a late completion and a failure) cannot both win, and whatever the loser read
before does not matter. The table below is the whole life of a job:

    pending -> queued -> running -> completed | failed | cancelled
    running -> queued        (its node failed or vanished: it waits for the next one)
    running -> cancelling -> cancelled   (the node is asked to stop the prompt; cancelled once it has)
    pending | queued -> cancelled | failed
    completed, failed, cancelled: final, nothing leaves them
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from database.enums import JobStatus
from database.shared.models import Job
from database.types import utcnow

__all__ = ["ALLOWED_FROM", "TRANSITIONS", "can_move", "expire", "move"]

P, Q, R, C = JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({Q, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({R, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({Q, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, C}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

# For each target: the states a job may be in to move there (the WHERE of the compare-and-set).
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    target: frozenset(source for source, targets in TRANSITIONS.items() if target in targets)
    for target in JobStatus
}


def can_move(current: JobStatus | str, target: JobStatus) -> bool:
    return target in TRANSITIONS[JobStatus(current)]


def move(
    session: Session,
    job_id: str,
    target: JobStatus,
    *,
    only_from: frozenset[JobStatus] | set[JobStatus] | None = None,
    **fields: Any,
) -> bool:
    """Move the job to `target` if its current state allows it (narrowed to `only_from` when given), setting
    `fields` in the same statement; False, and nothing written, when it does not.

    Timestamps follow the state: queued_at and started_at keep their first value, finished_at is set on a final
    state. The session's copy of the row, if any, is expired so the caller reads what was written."""
    allowed = ALLOWED_FROM[target] if only_from is None else ALLOWED_FROM[target] & frozenset(only_from)
    if not allowed:
        return False
    now = utcnow()
    values: dict[str, Any] = {"status": target, "updated_at": now, **fields}
    if target is JobStatus.QUEUED:
        values.setdefault("queued_at", func.coalesce(Job.queued_at, now))
    if target is JobStatus.RUNNING:
        values.setdefault("started_at", func.coalesce(Job.started_at, now))
    if target.is_final:
        values.setdefault("finished_at", now)
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(sorted(allowed)))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    changed = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    expire(session, job_id)
    return changed


def expire(session: Session, job_id: str) -> None:
    """Drop the session's copy of the job (after a bulk UPDATE), so the next read sees the row."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Job) and obj.id == job_id:
            session.expire(obj)
