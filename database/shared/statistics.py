"""Performance aggregates over the ledger, computed in Python so SQLite and MySQL agree to the digit."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.enums import AttemptStatus, JobStatus
from database.shared.models import Job, JobAttempt
from database.types import utcnow

FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


@dataclass(frozen=True, slots=True)
class PerformanceStats:
    """How one node or one workflow did: counts, durations in seconds, and the share that failed."""

    key: str  # node id, or "<task_type>/<workflow_name>"
    total: int
    succeeded: int
    failed: int
    mean_seconds: float | None
    p95_seconds: float | None
    failure_rate: float  # failed / (succeeded + failed); 0.0 when nothing finished


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """Jobs that finished during the minute starting at `minute` (UTC)."""

    minute: datetime
    completed: int
    failed: int


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _stats(key: str, outcomes: list[tuple[bool, float | None]]) -> PerformanceStats:
    succeeded = sum(1 for ok, _ in outcomes if ok)
    failed = len(outcomes) - succeeded
    durations = [seconds for _, seconds in outcomes if seconds is not None]
    return PerformanceStats(
        key=key,
        total=len(outcomes),
        succeeded=succeeded,
        failed=failed,
        mean_seconds=sum(durations) / len(durations) if durations else None,
        p95_seconds=percentile(durations, 0.95),
        failure_rate=failed / len(outcomes) if outcomes else 0.0,
    )


def _group(rows: Iterable[tuple[str, bool, float | None]]) -> list[PerformanceStats]:
    grouped: dict[str, list[tuple[bool, float | None]]] = defaultdict(list)
    for key, ok, seconds in rows:
        grouped[key].append((ok, seconds))
    return [_stats(key, outcomes) for key, outcomes in sorted(grouped.items())]


def node_performance(session: Session, *, since: datetime | None = None) -> list[PerformanceStats]:
    """Per node, over finished attempts (a job that failed over counts on each node it tried)."""
    stmt = select(JobAttempt.node_id, JobAttempt.status, JobAttempt.execution_seconds).where(
        JobAttempt.status.in_((AttemptStatus.SUCCEEDED, AttemptStatus.FAILED))
    )
    if since is not None:
        stmt = stmt.where(JobAttempt.finished_at >= since)
    rows = session.execute(stmt)
    return _group((node, status == AttemptStatus.SUCCEEDED, seconds) for node, status, seconds in rows)


def workflow_performance(session: Session, *, since: datetime | None = None) -> list[PerformanceStats]:
    """Per task type and workflow, over completed and failed jobs; duration is start to finish."""
    stmt = select(Job.task_type, Job.workflow_name, Job.status, Job.started_at, Job.finished_at).where(
        Job.status.in_(FINISHED)
    )
    if since is not None:
        stmt = stmt.where(Job.finished_at >= since)
    rows = (
        (f"{task_type}/{workflow}", status == JobStatus.COMPLETED, _seconds(started, finished))
        for task_type, workflow, status, started, finished in session.execute(stmt)
    )
    return _group(rows)


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return (finished - started).total_seconds()


def throughput(session: Session, *, minutes: int = 60, now: datetime | None = None) -> list[ThroughputPoint]:
    """Completed and failed jobs per minute over the last `minutes` minutes, oldest first, empty minutes included."""
    end = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    buckets = {start + timedelta(minutes=i): [0, 0] for i in range(minutes)}
    stmt = select(Job.status, Job.finished_at).where(
        Job.status.in_(FINISHED), Job.finished_at >= start, Job.finished_at < end
    )
    for status, finished in session.execute(stmt):
        assert finished is not None  # filtered in SQL
        bucket = buckets[finished.replace(second=0, microsecond=0)]
        bucket[0 if status == JobStatus.COMPLETED else 1] += 1
    return [ThroughputPoint(minute, completed, failed) for minute, (completed, failed) in buckets.items()]
