"""Idempotency-Key on submits: a retried submit returns the first job (across an API restart, never a second run
on the node), the same key with another body is 422, and concurrent duplicates make one job (SQLite, MariaDB)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from api.dispatcher import Dispatcher
from api.errors import InvalidParameters
from api.services import jobs
from api.settings import get_api_settings
from database.client import repositories as client_repo
from database.client.models import ClientJob
from database.engine import session_scope
from database.enums import DatabaseName
from database.shared.models import IdempotencyKey, Job
from database.types import utcnow
from tests.api.conftest import reset_caches
from tests.fixtures.databases import DatabaseUrls
from tests.fixtures.stack import Stack, restart_api

BODY = {"prompt": "a lighthouse, once", "steps": 3, "width": 64, "height": 64, "seed": 7}


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


def _executions(stack: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in stack.simnodes:
        for prompt, n in node.state().get("executions", {}).items():
            counts[prompt] = counts.get(prompt, 0) + n
    return counts


@pytest.mark.prefect
def test_a_retried_submit_returns_the_first_job_and_runs_once_across_a_restart(stack: Stack) -> None:
    token = stack.new_client_token()
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    before = _executions(stack)
    with stack.http(token) as http:
        first = http.post("/api/v2/tasks/text-to-image", json=BODY, headers=key)
        assert first.status_code == 202, first.text
        task_id = first.json()["task_id"]
        again = http.post("/api/v2/tasks/text-to-image", json=dict(reversed(BODY.items())), headers=key)
        assert again.status_code == 202 and again.json()["task_id"] == task_id, again.text
        other = http.post("/api/v2/tasks/text-to-image", json={**BODY, "steps": 4}, headers=key)
        assert other.status_code == 422, other.text
        assert other.json()["fields"][0]["field"] == "Idempotency-Key"
        bad_key = http.post("/api/v2/tasks/text-to-image", json=BODY, headers={"Idempotency-Key": "x" * 256})
        assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.text
    restart_api(stack)  # the keys live in the shared database, not in the API process
    with stack.http(token) as http:
        replay = http.post("/api/v2/tasks/text-to-image", json=BODY, headers=key)
        assert replay.status_code == 202 and replay.json()["task_id"] == task_id, replay.text
    assert stack.wait_final(token, task_id)["status"] == "completed"
    with stack.http(token) as http:
        late = http.post("/api/v2/tasks/text-to-image", json=BODY, headers=key)
        assert late.status_code == 202 and late.json()["task_id"] == task_id
        assert late.json()["status"] == "completed"
        listed = http.get("/api/v2/tasks").json()
    assert listed["total"] == 1
    after = _executions(stack)
    new = {prompt: n - before.get(prompt, 0) for prompt, n in after.items() if n != before.get(prompt, 0)}
    assert list(new.values()) == [1], new  # one run on the node, however often the client asked


@pytest.fixture
def no_launch_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Submits answer at once (pending): these tests exercise the ledger, not the scheduler."""
    monkeypatch.setenv("COMFYWS_API_LAUNCH_WAIT_S", "0")
    monkeypatch.setenv("COMFYWS_API_PREFECT_API_URL", "http://127.0.0.1:9/api")
    get_api_settings.cache_clear()
    yield
    get_api_settings.cache_clear()


def _client() -> str:
    """A client row (its jobs are indexed in the client database)."""
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    with session_scope(DatabaseName.CLIENT) as session:
        client_repo.create_client(
            session, client_id=client_id, name=client_id, description="", secret_hash="-", scopes=[]
        )
    return client_id


def _count(model: type[Job] | type[ClientJob], client_id: str, database: DatabaseName) -> int:
    with session_scope(database) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(model.client_id == client_id)) or 0)


async def test_concurrent_duplicates_make_one_job(databases: DatabaseUrls, no_launch_wait: None) -> None:
    client_id = _client()
    dispatcher = Dispatcher()  # not started: the jobs stay pending, nothing is sent anywhere

    async def send() -> str:
        return (await jobs.submit(dispatcher, client_id, "text_to_image", dict(BODY), idempotency_key="k-1")).task_id

    task_ids = await asyncio.gather(*(send() for _ in range(8)))
    assert len(set(task_ids)) == 1, task_ids
    assert _count(Job, client_id, DatabaseName.SHARED) == 1
    assert _count(ClientJob, client_id, DatabaseName.CLIENT) == 1
    with pytest.raises(InvalidParameters) as refused:
        await jobs.submit(dispatcher, client_id, "text_to_image", {**BODY, "seed": 8}, idempotency_key="k-1")
    assert refused.value.extra["fields"][0]["field"] == "Idempotency-Key"
    other_client = await jobs.submit(dispatcher, _client(), "text_to_image", dict(BODY), idempotency_key="k-1")
    assert other_client.task_id != task_ids[0]  # keys belong to one client


async def test_a_key_older_than_a_day_is_forgotten(databases: DatabaseUrls, no_launch_wait: None) -> None:
    client_id = _client()
    dispatcher = Dispatcher()
    first = await jobs.submit(dispatcher, client_id, "text_to_image", dict(BODY), idempotency_key="daily")
    with session_scope(DatabaseName.SHARED) as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=24, seconds=1)))
    second = await jobs.submit(dispatcher, client_id, "text_to_image", {**BODY, "seed": 9}, idempotency_key="daily")
    assert second.task_id != first.task_id
    assert _count(Job, client_id, DatabaseName.SHARED) == 2
