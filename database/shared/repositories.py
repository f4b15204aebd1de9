"""Queries on the job ledger: functions over a caller's Session that may flush but never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from database.enums import AttemptStatus, JobStatus, Priority
from database.errors import JobNotFoundError
from database.shared import transitions
from database.shared.models import Job, JobAttempt, ResultFile
from database.shared.statistics import (
    PerformanceStats,
    ThroughputPoint,
    node_performance,
    throughput,
    workflow_performance,
)
from database.types import utcnow

__all__ = [
    "PerformanceStats",
    "ThroughputPoint",
    "add_result",
    "claim",
    "count_by_status",
    "create_job",
    "finish_attempt",
    "get_job",
    "get_job_for_client",
    "list_jobs",
    "mark_cancelled",
    "mark_completed",
    "mark_failed",
    "mark_queued",
    "mark_running",
    "node_performance",
    "note_waiting",
    "queue_position",
    "record_values",
    "release_node",
    "request_cancel",
    "start_attempt",
    "stop_waiting",
    "throughput",
    "update_progress",
    "waiters_ahead",
    "workflow_performance",
]

WAITING = (JobStatus.PENDING, JobStatus.QUEUED)
PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


def create_job(
    session: Session,
    *,
    job_id: str,
    client_id: str,
    task_type: str,
    workflow_name: str,
    params: dict[str, Any],
    priority: Priority = Priority.NORMAL,
    node_group: str = "default",
    work: int | None = None,
    batch_id: str | None = None,
    batch_index: int | None = None,
) -> Job:
    """A new ledger row in `pending`: the caller commits it before creating the flow run.

    `work` is the job's size in sampler steps (what placement weighs); None when unknown. A batch's item
    carries the batch id and its index there."""
    job = Job(
        id=job_id,
        client_id=client_id,
        task_type=task_type,
        workflow_name=workflow_name,
        params=params,
        priority=Priority(priority),
        node_group=node_group,
        work=work,
        batch_id=batch_id,
        batch_index=batch_index,
        status=JobStatus.PENDING,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job | None:
    """The job, row-locked until the caller's transaction ends when `for_update` (MySQL; SQLite locks on write)."""
    stmt = select(Job).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def get_job_for_client(session: Session, job_id: str, client_id: str) -> Job | None:
    """The job only if `client_id` owns it: another client's job looks exactly like a missing one."""
    stmt = select(Job).where(Job.id == job_id, Job.client_id == client_id)
    return session.scalars(stmt).one_or_none()


def _require(session: Session, job_id: str) -> Job:
    job = get_job(session, job_id, for_update=True)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def list_jobs(
    session: Session,
    *,
    client_id: str | None = None,
    status: JobStatus | str | None = None,
    task_type: str | None = None,
    node_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """One page of jobs, newest first, and how many match the filters in all."""
    stmt: Select[tuple[Job]] = select(Job)
    if client_id is not None:
        stmt = stmt.where(Job.client_id == client_id)
    if status is not None:
        stmt = stmt.where(Job.status == JobStatus(status))
    if task_type is not None:
        stmt = stmt.where(Job.task_type == task_type)
    if node_id is not None:
        stmt = stmt.where(Job.node_id == node_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(page)), total


def mark_queued(session: Session, job_id: str, flow_run_id: str) -> bool:
    """The flow run exists: a pending job becomes queued (False otherwise). The flow run id is recorded even when
    its worker already took the job further (it may start before this is written; cancels need the id)."""
    _require(session, job_id)
    if transitions.move(session, job_id, JobStatus.QUEUED, only_from={JobStatus.PENDING},
                        flow_run_id=flow_run_id):
        return True
    session.execute(
        update(Job).where(Job.id == job_id, Job.flow_run_id.is_(None)).values(flow_run_id=flow_run_id)
        .execution_options(synchronize_session=False)
    )
    transitions.expire(session, job_id)
    return False


def claim(session: Session, job_id: str, *, node_id: str) -> bool:
    """The job took a slot on `node_id` (RUNNING); False when it is no longer waiting (cancelled, final)."""
    _require(session, job_id)  # the row lock first, as every writer takes it (MySQL: no deadlock on the index)
    return transitions.move(session, job_id, JobStatus.RUNNING, node_id=node_id, prompt_id=None)


def mark_running(session: Session, job_id: str, *, node_id: str, prompt_id: str) -> bool:
    """The job's prompt goes on `node_id`: True only while the job holds that slot (RUNNING, not cancelling)."""
    _require(session, job_id)
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(node_id=node_id, prompt_id=prompt_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    transitions.expire(session, job_id)
    return changed


def release_node(session: Session, job_id: str) -> bool:
    """The attempt on its node failed: the job waits again (queued, no node) for its next node."""
    _require(session, job_id)
    return transitions.move(session, job_id, JobStatus.QUEUED, only_from={JobStatus.RUNNING}, node_id=None,
                            prompt_id=None, current_step=None, progress=0.0)


def update_progress(session: Session, job_id: str, *, step: int, total: int) -> bool:
    """Record sampler progress; a finished job keeps its final progress."""
    progress = min(1.0, max(0.0, step / total)) if total > 0 else 0.0
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([JobStatus.RUNNING, JobStatus.CANCELLING]))
        .values(current_step=step, total_steps=total, progress=progress, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    transitions.expire(session, job_id)
    return changed


def record_values(session: Session, job_id: str, *, values: dict[str, Any], seed: int | None) -> None:
    """What was actually rendered into the graph, so a result can be reproduced."""
    job = _require(session, job_id)
    job.values = values
    job.seed = seed
    session.flush()


def start_attempt(session: Session, job_id: str, *, node_id: str, prompt_id: str) -> JobAttempt:
    """A new try of the job on `node_id`, numbered after the previous ones."""
    job = _require(session, job_id)  # the row lock serialises concurrent attempts on MySQL
    count = session.scalar(select(func.count()).where(JobAttempt.job_id == job_id)) or 0
    attempt = JobAttempt(
        job_id=job_id,
        number=count + 1,
        node_id=node_id,
        prompt_id=prompt_id,
        status=AttemptStatus.RUNNING,
        started_at=utcnow(),
    )
    session.add(attempt)
    job.attempts = count + 1
    session.flush()
    return attempt


def finish_attempt(
    session: Session,
    attempt_id: int,
    *,
    status: AttemptStatus,
    error: str | None = None,
    execution_seconds: float | None = None,
) -> bool:
    """Close a running attempt; its duration defaults to the wall time since it started."""
    attempt = session.get(JobAttempt, attempt_id, with_for_update=True)
    if attempt is None or attempt.status != AttemptStatus.RUNNING:
        return False
    now = utcnow()
    attempt.status = AttemptStatus(status)
    attempt.error = error
    attempt.finished_at = now
    if execution_seconds is None:
        execution_seconds = (now - attempt.started_at).total_seconds()
    attempt.execution_seconds = execution_seconds
    session.flush()
    return True


def add_result(
    session: Session,
    job_id: str,
    *,
    index: int,
    filename: str,
    path: str,
    kind: str,
    content_type: str,
    size: int,
    sha256: str,
    node_id: str | None = None,
) -> ResultFile:
    """Record result `index` of a job once: a repeated call (a retried task) returns the first row."""
    existing = _result(session, job_id, index)
    if existing is not None:
        return existing
    values: dict[str, Any] = {
        "job_id": job_id,
        "index": index,
        "filename": filename,
        "path": path,
        "kind": kind,
        "content_type": content_type,
        "size": size,
        "sha256": sha256,
        "node_id": node_id,
        "created_at": utcnow(),
    }
    # An insert that ignores the duplicate key: a concurrent writer's row wins without failing our transaction.
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite_insert(ResultFile).values(values).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = mysql_insert(ResultFile).values(values)
        stmt = stmt.on_duplicate_key_update(job_id=stmt.inserted.job_id)
    else:
        session.add(ResultFile(**values))
        session.flush()
        stmt = None
    if stmt is not None:
        session.flush()
        session.execute(stmt)
    row = _result(session, job_id, index)
    assert row is not None
    return row


def drop_results(session: Session, job_id: str) -> list[str]:
    """Forget the results of a job that ended cancelled (its node finished before the stop landed): a cancelled
    job has no results. Returns their paths under the outputs folder, for the caller to delete."""
    rows = list(session.scalars(select(ResultFile).where(ResultFile.job_id == job_id)))
    for row in rows:
        session.delete(row)
    session.flush()
    return [row.path for row in rows]


def _result(session: Session, job_id: str, index: int) -> ResultFile | None:
    stmt = select(ResultFile).where(ResultFile.job_id == job_id, ResultFile.index == index)
    return session.scalars(stmt).one_or_none()


def _finish(session: Session, job_id: str, status: JobStatus, **fields: Any) -> bool:
    _require(session, job_id)
    # A final state is final: a late completion never revives a cancelled job (the move checks it).
    return transitions.move(session, job_id, status, **fields)


def mark_completed(session: Session, job_id: str) -> bool:
    return _finish(session, job_id, JobStatus.COMPLETED, progress=1.0)


def mark_failed(session: Session, job_id: str, error: str) -> bool:
    return _finish(session, job_id, JobStatus.FAILED, error=error)


def mark_cancelled(session: Session, job_id: str) -> bool:
    return _finish(session, job_id, JobStatus.CANCELLED, cancel_requested=True)


def request_cancel(session: Session, job_id: str) -> JobStatus | None:
    """Cancel the job: one not yet on a node ends `cancelled` at once (a later slot claim finds it final); one on
    a node becomes `cancelling` until the node stopped its prompt. Returns the state it moved to (None: it was
    already final or cancelling, nothing changed)."""
    _require(session, job_id)
    waiting = {JobStatus.PENDING, JobStatus.QUEUED}
    if transitions.move(session, job_id, JobStatus.CANCELLED, only_from=waiting, cancel_requested=True):
        return JobStatus.CANCELLED
    if transitions.move(session, job_id, JobStatus.CANCELLING, cancel_requested=True):
        return JobStatus.CANCELLING
    return None


def _priority_rank() -> Any:
    return case(PRIORITY_RANK, value=Job.priority, else_=len(PRIORITY_RANK))


def _ahead_of(job: Job) -> Any:
    """Jobs of the same group that go before `job`: higher priority, then older (then smaller id)."""
    rank = PRIORITY_RANK.get(Priority(job.priority), len(PRIORITY_RANK))
    earlier = (Job.created_at < job.created_at) | ((Job.created_at == job.created_at) & (Job.id < job.id))
    ahead = (_priority_rank() < rank) | ((_priority_rank() == rank) & earlier)
    return (Job.node_group == job.node_group) & Job.status.in_(WAITING) & (Job.id != job.id) & ahead


def queue_position(session: Session, job: Job) -> int | None:
    """How many waiting jobs of the same node group go before `job` (0 = next); None once it left the queue."""
    if job.status not in WAITING:
        return None
    return session.scalar(select(func.count()).where(_ahead_of(job))) or 0


def note_waiting(
    session: Session, job_id: str, *, nodes: list[str], now: datetime, heartbeat_every: timedelta
) -> Job:
    """The job's flow waits in the claim loop for a slot on one of `nodes`: mark it, refresh the heartbeat.

    Writes at most once per `heartbeat_every` unless the node list changed (the loop polls far more often)."""
    job = _require(session, job_id)
    if job.waiting_since is None:
        job.waiting_since = now
    seen = job.waiting_seen_at
    if seen is None or now - seen >= heartbeat_every or job.waiting_nodes != nodes:
        job.waiting_seen_at = now
        job.waiting_nodes = nodes
    session.flush()
    return job


def stop_waiting(session: Session, job_id: str) -> None:
    """The job left the claim loop (it got a node, or gave up)."""
    job = get_job(session, job_id)
    if job is not None and job.waiting_since is not None:
        job.waiting_since = job.waiting_seen_at = job.waiting_nodes = None
        session.flush()


def waiters_ahead(session: Session, job: Job, *, seen_since: datetime) -> list[list[str]]:
    """For each live job waiting for a slot that goes before `job`, best first: the nodes it could run on.

    Live = its claim loop beat since `seen_since`; a waiter whose worker died stops counting, so it never
    blocks the group for long."""
    stmt = (
        select(Job.waiting_nodes)
        .where(_ahead_of(job), Job.waiting_seen_at.is_not(None), Job.waiting_seen_at >= seen_since)
        .order_by(_priority_rank(), Job.created_at, Job.id)
    )
    return [list(nodes or []) for nodes in session.scalars(stmt)]


def count_by_status(session: Session) -> dict[JobStatus, int]:
    """Jobs per state, every state present (zero when none)."""
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[JobStatus(status)] = count
    return counts
