"""A client's quota at submit time: jobs per day, submits per minute and unfinished jobs at once (429s)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import QuotaExceeded
from api.throttle import Key, TooManyAttempts, get_throttle, submits
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName, JobStatus
from database.shared.models import Job
from database.types import utcnow

UNFINISHED = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)
# A client at its concurrent-job cap is told to come back after about one short job.
CONCURRENCY_RETRY_AFTER_S = 5


def check_submit(session: Session, client_id: str) -> None:
    """Refuse (429, with Retry-After where a wait helps) a submit over any part of the client's quota; an
    accepted submit counts against the per-minute rate."""
    client = client_repo.get_client(session, client_id)
    if client is None:
        return
    rate = submits(client.jobs_per_minute) if client.jobs_per_minute is not None else None
    key = Key("submits", client_id)
    if rate is not None and (wait := get_throttle().retry_after(rate, key)) is not None:
        raise TooManyAttempts(f"submit rate of {client.jobs_per_minute} jobs per minute reached", wait)
    if client.daily_quota is not None:
        used = client_repo.count_jobs_since(session, client_id, utcnow() - timedelta(days=1))
        if used >= client.daily_quota:
            raise QuotaExceeded(f"daily quota of {client.daily_quota} jobs used")
    if client.max_concurrent_jobs is not None:
        running = count_unfinished(client_id)
        if running >= client.max_concurrent_jobs:
            raise TooManyAttempts(
                f"{running} unfinished jobs: the limit is {client.max_concurrent_jobs} at once",
                CONCURRENCY_RETRY_AFTER_S,
            )
    if rate is not None:
        get_throttle().hit(rate, key)


def count_unfinished(client_id: str) -> int:
    with session_scope(DatabaseName.SHARED) as shared:
        query = select(func.count()).select_from(Job).where(Job.client_id == client_id, Job.status.in_(UNFINISHED))
        return int(shared.scalar(query) or 0)
