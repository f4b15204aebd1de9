"""Queries on batches and their items (jobs carrying a batch id): functions that may flush but never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from database.enums import BatchStatus, JobStatus
from database.shared.models import Batch, Job
from database.types import utcnow

UNFINISHED = [s for s in JobStatus if not s.is_final]


def create_batch(session: Session, **fields: Any) -> Batch:
    """A new batch in `running`; the caller adds its item jobs in the same transaction and commits."""
    batch = Batch(status=BatchStatus.RUNNING, created_at=utcnow(), feeders=0, **fields)
    session.add(batch)
    session.flush()
    return batch


def get_batch(session: Session, batch_id: str, *, client_id: str | None = None) -> Batch | None:
    """The batch; with a client id only that client's (another client's batch looks missing)."""
    stmt = select(Batch).where(Batch.id == batch_id)
    if client_id is not None:
        stmt = stmt.where(Batch.client_id == client_id)
    return session.scalars(stmt).one_or_none()


def find_by_key(session: Session, client_id: str, key: str) -> Batch | None:
    stmt = select(Batch).where(Batch.client_id == client_id, Batch.idempotency_key == key)
    return session.scalars(stmt).one_or_none()


def list_batches(
    session: Session, *, client_id: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Batch], int]:
    """One page of batches, newest first, and how many there are in all."""
    stmt = select(Batch)
    if client_id is not None:
        stmt = stmt.where(Batch.client_id == client_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = stmt.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(page)), total


def counts(session: Session, batch_ids: list[str]) -> dict[str, dict[str, int]]:
    """Item jobs per status of each batch: {batch_id: {status: n}}."""
    result: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
    if not batch_ids:
        return result
    stmt = (
        select(Job.batch_id, Job.status, func.count())
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id, Job.status)
    )
    for batch_id, status, n in session.execute(stmt):
        result[str(batch_id)][JobStatus(status).value] = int(n)
    return result


def items(session: Session, batch_id: str) -> list[Job]:
    """Every item job of the batch, by index (results loaded with them)."""
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index)))


def unfed(session: Session, batch_id: str, limit: int) -> list[Job]:
    """The next items still waiting for a flow run, lowest index first."""
    stmt = (
        select(Job)
        .where(Job.batch_id == batch_id, Job.status == JobStatus.PENDING, Job.flow_run_id.is_(None))
        .order_by(Job.batch_index)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def in_flight(session: Session, batch_id: str) -> int:
    """Items that have a flow run and have not ended: what the look-ahead bounds."""
    stmt = select(func.count()).where(
        Job.batch_id == batch_id, Job.flow_run_id.is_not(None), Job.status.in_(UNFINISHED)
    )
    return int(session.scalar(stmt) or 0)


def unfinished_ids(session: Session, batch_id: str) -> list[tuple[str, str | None]]:
    """(job id, flow run id) of every item that has not ended."""
    stmt = select(Job.id, Job.flow_run_id).where(Job.batch_id == batch_id, Job.status.in_(UNFINISHED))
    return [(str(job_id), run) for job_id, run in session.execute(stmt)]


def final_status(batch: Batch, item_counts: dict[str, int]) -> BatchStatus:
    """What the batch's items add up to: running while any item has not ended."""
    if batch.status is BatchStatus.CANCELLED:
        return BatchStatus.CANCELLED
    if any(item_counts.get(s.value, 0) for s in UNFINISHED):
        return BatchStatus.RUNNING
    completed = item_counts.get(JobStatus.COMPLETED.value, 0)
    if completed == 0:
        return BatchStatus.FAILED
    if completed == batch.total:
        return BatchStatus.COMPLETED
    return BatchStatus.COMPLETED_WITH_ERRORS


def settle(session: Session, batch_id: str) -> BatchStatus:
    """Record the batch's final status once every item has ended (compare-and-set from `running`)."""
    batch = get_batch(session, batch_id)
    if batch is None:
        return BatchStatus.FAILED
    status = final_status(batch, counts(session, [batch_id])[batch_id])
    if status is not BatchStatus.RUNNING and batch.status is BatchStatus.RUNNING:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == BatchStatus.RUNNING)
            .values(status=status, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.expire(batch)
    return status


def mark_cancelled(session: Session, batch_id: str) -> bool:
    """The batch ends `cancelled` (only from `running`); its items are cancelled by the caller."""
    stmt = (
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == BatchStatus.RUNNING)
        .values(status=BatchStatus.CANCELLED, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]


def feeder_alive(session: Session, batch_id: str, flow_run_id: str | None = None) -> None:
    """The feeder's heartbeat (and its flow run id when it is a new one)."""
    values: dict[str, Any] = {"feeder_seen_at": utcnow()}
    if flow_run_id is not None:
        values["flow_run_id"] = flow_run_id
    session.execute(
        update(Batch).where(Batch.id == batch_id).values(**values).execution_options(synchronize_session=False)
    )


def orphaned(session: Session, *, seen_before: datetime, limit: int = 20) -> list[Batch]:
    """Running batches whose feeder was not seen since `seen_before` (or never): they need a new feeder."""
    stmt = (
        select(Batch)
        .where(Batch.status == BatchStatus.RUNNING)
        .where((Batch.feeder_seen_at.is_(None) & (Batch.created_at < seen_before))
               | (Batch.feeder_seen_at < seen_before))
        .order_by(Batch.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def next_feeder(session: Session, batch_id: str) -> int:
    """Count one more feeder for the batch and return its number (the key of its flow run)."""
    session.execute(
        update(Batch).where(Batch.id == batch_id).values(feeders=Batch.feeders + 1, feeder_seen_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(session.scalar(select(Batch.feeders).where(Batch.id == batch_id)) or 0)
