"""Plain functions that create real rows the API serves: jobs of a client and their result files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from comfyws.settings import get_settings
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName
from database.shared import repositories as ledger
from tests.database.factories import make_job, put_on_node


def job_for(client_id: str, *, task_type: str = "text_to_image") -> str:
    """A pending job of `client_id`, in the ledger and in the client's index."""
    with session_scope(DatabaseName.SHARED) as session:
        job_id = make_job(session, client_id=client_id, task_type=task_type, workflow_name="sd_basic").id
    with session_scope(DatabaseName.CLIENT) as session:
        client_repo.add_client_job(session, job_id=job_id, client_id=client_id, task_type=task_type)
    return job_id


def result_for(job_id: str, data: bytes, *, index: int = 0) -> Path:
    """A stored result file of the job, as the flow would record it."""
    relative = f"{job_id}/{index}.png"
    path = get_settings().outputs_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    with session_scope(DatabaseName.SHARED) as session:
        ledger.add_result(
            session, job_id, index=index, filename=f"{index}.png", path=relative, kind="image",
            content_type="image/png", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        )  # fmt: skip
        put_on_node(session, job_id, node_id="node-test", prompt_id=f"prompt-{job_id}")  # the only way to completed
        assert ledger.mark_completed(session, job_id)
    return path
