"""Ledger rows as the clients see them: the Task model and its result URLs."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from api.schemas import ResultInfo, Task
from database.enums import JobStatus, NodeStatus, Priority
from database.shared import repositories as ledger
from database.shared.models import Job, ResultFile
from workers import registry


def result_url(job_id: str, index: int) -> str:
    return f"/api/v2/tasks/{job_id}/results/{index}"


def result_info(row: ResultFile) -> ResultInfo:
    return ResultInfo(
        index=row.index,
        url=result_url(row.job_id, row.index),
        filename=row.filename,
        kind=row.kind,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
    )


# A group's "no node up" answer is reused this long: a page of fifty waiting jobs asks the registry once.
_GROUP_UP_TTL_S = 1.0
_group_up: dict[str, tuple[float, bool]] = {}


def _group_has_node_up(group: str) -> bool:
    now = time.monotonic()
    cached = _group_up.get(group)
    if cached is not None and now - cached[0] < _GROUP_UP_TTL_S:
        return cached[1]
    nodes = registry.list_snapshots(group)
    up = any(n.enabled and not n.draining and n.status != NodeStatus.UNHEALTHY for n in nodes)
    _group_up[group] = (now, up)
    return up


def status_detail(job: Job) -> str | None:
    """Why a job that is not final is where it is, when it is not obvious."""
    if job.status in (JobStatus.PENDING, JobStatus.QUEUED) and not _group_has_node_up(job.node_group):
        return f"waiting for a node of group {job.node_group}"
    if job.status == JobStatus.CANCELLING:
        return f"waiting for node {job.node_id} to stop the prompt"
    return None


def readable(value: Any) -> Any:
    """Stored text as a response can carry it: a lone surrogate (rows written before input was checked, or
    a node's message) becomes U+FFFD instead of failing the whole answer with a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {readable(k): readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def task_view(session: Session, job: Job) -> Task:
    """The Task shape of one ledger row; queue position only while it waits."""
    waiting = job.status in (JobStatus.PENDING, JobStatus.QUEUED)
    return Task(
        task_id=job.id,
        task_type=job.task_type,
        workflow_name=job.workflow_name,
        status=JobStatus(job.status),
        progress=job.progress or 0.0,
        current_step=job.current_step,
        total_steps=job.total_steps,
        node_id=job.node_id,
        priority=Priority(job.priority),
        params=readable(job.params or {}),
        seed=job.seed,
        error=readable(job.error),
        status_detail=status_detail(job),
        attempts=job.attempts or 0,
        queue_position=ledger.queue_position(session, job) if waiting else None,
        cancel_requested=bool(job.cancel_requested),
        created_at=job.created_at,
        queued_at=job.queued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        results=[result_info(r) for r in job.results],
    )
