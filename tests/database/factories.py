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
