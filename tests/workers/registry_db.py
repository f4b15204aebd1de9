"""Fixture for the registry and health tests: fresh databases (SQLite files, or MariaDB schemas) with tables.

Tables come from each database's metadata (create_all) so these tests do not depend on the migrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyws.settings import get_settings
from database.admin.models import Node
from database.alembic_env import load_models
from database.engine import METADATA, get_engine, reset_engines, session_scope
from database.enums import DatabaseName, JobStatus, NodeSource, NodeStatus
from database.shared.models import Job
from tests.fixtures.databases import MariaDB

BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


def _urls(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[DatabaseName, str]:
    if backend == "sqlite":
        return {name: f"sqlite:///{tmp_path / f'{name.value}.db'}" for name in DatabaseName}
    server: MariaDB = request.getfixturevalue("mariadb")
    return server.urls(f"w{uuid.uuid4().hex[:6]}").urls


@pytest.fixture
def sqlite_registry_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Empty SQLite databases under tmp_path with every table; env and engines point at them."""
    yield from _use("sqlite", tmp_path, monkeypatch, None)


@pytest.fixture(params=BACKENDS)
def registry_db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The same on SQLite and on MariaDB (the row-lock path of claims)."""
    yield from _use(request.param, tmp_path, monkeypatch, request)


def _use(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest | None
) -> Iterator[Path]:
    monkeypatch.setenv("COMFYWS_DATA_DIR", str(tmp_path))
    for name, url in _urls(backend, tmp_path, request).items():  # type: ignore[arg-type]
        monkeypatch.setenv(f"COMFYWS_DB_{name.value.upper()}_URL", url)
    get_settings.cache_clear()
    reset_engines()
    load_models()
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


def add_job(*, group: str = "default", status: JobStatus = JobStatus.QUEUED, node_id: str | None = None,
            work: int | None = None) -> str:
    """A ledger row (of `work` sampler steps); returns its id."""
    job_id = str(uuid.uuid4())
    with session_scope(DatabaseName.SHARED) as session:
        session.add(Job(id=job_id, client_id="c1", task_type="text_to_image", workflow_name="basic",
                        node_group=group, status=status, node_id=node_id, work=work))
    return job_id


def job_row(job_id: str) -> Job:
    with session_scope(DatabaseName.SHARED) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job
