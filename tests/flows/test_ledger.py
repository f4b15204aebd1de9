"""The flows' side of the ledger: how a run's end meets a cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyws.settings import get_settings
from database.engine import session_scope
from database.enums import DatabaseName, JobStatus
from database.shared import repositories as jobs
from flows import ledger
from tests.database.factories import make_job, put_on_node
from tests.fixtures.databases import DatabaseUrls


@pytest.fixture
def outputs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COMFYWS_OUTPUTS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_a_run_that_finishes_while_its_job_is_cancelling_leaves_a_cancelled_job_without_results(
    databases: DatabaseUrls, outputs_dir: Path
) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        job_id = make_job(session).id
        put_on_node(session, job_id, node_id="node-1", prompt_id="p1")
    # The node finished before the stop reached it: the run stores its file, then the client's cancel arrives.
    stored = outputs_dir / job_id / "00-out.png"
    stored.parent.mkdir()
    stored.write_bytes(b"\x89PNG")
    asyncio.run(ledger.add_result(job_id, index=0, filename="00-out.png", path=f"{job_id}/00-out.png",
                                  kind="image", content_type="image/png", size=4, sha256="ab" * 32))
    with session_scope(DatabaseName.SHARED) as session:
        assert jobs.request_cancel(session, job_id) is JobStatus.CANCELLING

    assert asyncio.run(ledger.finish(job_id, JobStatus.COMPLETED)) is JobStatus.CANCELLED

    with session_scope(DatabaseName.SHARED) as session:
        job = jobs.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.CANCELLED
        assert job.results == []
    assert not stored.exists()
