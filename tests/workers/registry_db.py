"""Fixture for the registry and health tests: fresh SQLite admin and shared databases in a temp directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyws.settings import get_settings
from database.admin.models import Node
from database.engine import METADATA, get_engine, reset_engines, session_scope
from database.enums import DatabaseName, JobStatus, NodeSource, NodeStatus
from database.shared.models import Job


@pytest.fixture
def registry_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the three databases at files under tmp_path and create their tables."""
    monkeypatch.setenv("COMFYWS_DATA_DIR", str(tmp_path))
    for name in DatabaseName:
        monkeypatch.setenv(f"COMFYWS_DB_{name.value.upper()}_URL", f"sqlite:///{tmp_path / f'{name.value}.db'}")
    get_settings.cache_clear()
    reset_engines()
    for name, metadata in METADATA.items():
        metadata.create_all(get_engine(name))
    yield tmp_path
    reset_engines()
    get_settings.cache_clear()


def add_node(node_id: str, *, group: str = "default", max_concurrent: int = 1, **fields: object) -> None:
    """A dynamic node row, healthy unless told otherwise."""
    values: dict[str, object] = {
        "base_url": f"http://{node_id}.invalid:8188", "status": NodeStatus.HEALTHY, "source": NodeSource.DYNAMIC,
    }
    values.update(fields)
    with session_scope(DatabaseName.ADMIN) as session:
        session.add(Node(node_id=node_id, group=group, max_concurrent=max_concurrent, **values))


def add_job(*, group: str = "default", status: JobStatus = JobStatus.QUEUED, node_id: str | None = None) -> str:
    """A ledger row; returns its id."""
    job_id = str(uuid.uuid4())
    with session_scope(DatabaseName.SHARED) as session:
        session.add(Job(id=job_id, client_id="c1", task_type="text_to_image", workflow_name="basic",
                        node_group=group, status=status, node_id=node_id))
    return job_id


def job_row(job_id: str) -> Job:
    with session_scope(DatabaseName.SHARED) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job
