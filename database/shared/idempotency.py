"""Queries on submit idempotency keys: functions over a caller's Session that may flush but never commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from database.shared.models import IdempotencyKey
from database.types import utcnow

KEY_TTL = timedelta(hours=24)


def find_key(session: Session, client_id: str, key: str, *, now: datetime | None = None) -> IdempotencyKey | None:
    """The client's live key (younger than 24 h), or None."""
    row = session.get(IdempotencyKey, (client_id, key))
    if row is None or row.created_at <= (now or utcnow()) - KEY_TTL:
        return None
    return row


def add_key(session: Session, *, client_id: str, key: str, request_hash: str, job_id: str) -> bool:
    """Record the key with the job it creates; False when a live key is there already (read it back instead).

    Flushed at once so a concurrent duplicate fails here (IntegrityError); the caller writes the job in the same
    transaction and then reads the winner back with `find_key` in a new one. An expired row of the same key is
    replaced. (Only an existing expired row is deleted: a DELETE that matches nothing would take a gap lock on
    MySQL and turn two concurrent duplicates into a deadlock instead of one duplicate-key error.)"""
    old = session.get(IdempotencyKey, (client_id, key))
    if old is not None:
        if old.created_at > utcnow() - KEY_TTL:
            return False
        session.delete(old)
        session.flush()
    session.add(
        IdempotencyKey(
            client_id=client_id, idempotency_key=key, request_hash=request_hash, job_id=job_id, status_code=202
        )
    )
    session.flush()
    return True


def set_answer_status(session: Session, client_id: str, key: str, status_code: int) -> None:
    """The status the first submit was answered with (503 when its job failed to reach the scheduler)."""
    row = session.get(IdempotencyKey, (client_id, key))
    if row is not None:
        row.status_code = status_code


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete keys older than 24 h; returns how many."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at <= (now or utcnow()) - KEY_TTL)
    )
    return int(getattr(result, "rowcount", 0) or 0)
