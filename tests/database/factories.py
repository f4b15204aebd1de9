"""Plain functions that create real ledger rows for tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from database.enums import Priority
from database.shared import repositories as jobs
from database.shared.models import Job


def make_job(
    session: Session,
    *,
    client_id: str = "client-a",
    task_type: str = "text_to_image",
    workflow_name: str = "basic",
    priority: Priority = Priority.NORMAL,
    node_group: str = "default",
    params: dict[str, Any] | None = None,
) -> Job:
    return jobs.create_job(
        session,
        job_id=str(uuid.uuid4()),
        client_id=client_id,
        task_type=task_type,
        workflow_name=workflow_name,
        params=params if params is not None else {"prompt": "a lighthouse at dusk"},
        priority=priority,
        node_group=node_group,
    )


def put_on_node(session: Session, job_id: str, *, node_id: str, prompt_id: str) -> None:
    """The way a job reaches a node: its flow run exists (queued), a claim takes a slot, its prompt is sent."""
    jobs.mark_queued(session, job_id, f"flow-run-{job_id}")
    assert jobs.claim(session, job_id, node_id=node_id)
    assert jobs.mark_running(session, job_id, node_id=node_id, prompt_id=prompt_id)
