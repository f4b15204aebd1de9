"""The API restarting under running jobs loses and repeats nothing (the README's curl session: tests/test_readme.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.api.conftest import reset_caches
from tests.fixtures.stack import FINAL, Stack, restart_api, stack_environment

pytestmark = pytest.mark.prefect

JOBS = 4
FOLLOW_TIMEOUT_S = 90.0


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


@dataclass
class Follow:
    """What the owner's socket for one job saw, across reconnections."""

    connections: int = 0
    statuses: list[str] = field(default_factory=list)
    final_at: float = 0.0


async def _follow(stack: Stack, token: str, task_id: str) -> Follow:
    """The owner's WebSocket for one job: reconnect whenever it drops, until a final status arrives."""
    seen = Follow()
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        url = stack.api_url.replace("http://", "ws://") + f"/api/v2/ws/tasks/{task_id}?token={token}"
        try:
            async with connect(url, open_timeout=5) as socket:
                seen.connections += 1
                async for raw in socket:
                    event = json.loads(raw)
                    if event["type"] == "status":
                        seen.statuses.append(event["status"])
                        if event["status"] in FINAL:
                            seen.final_at = time.monotonic()
                            return seen
        except (OSError, TimeoutError, WebSocketException):
            pass  # the API is restarting
        await asyncio.sleep(0.05)  # reconnect back-off, as a browser client would
    raise AssertionError(f"no final status for {task_id} within {FOLLOW_TIMEOUT_S}s: {seen}")


async def _statuses(stack: Stack, token: str, ids: list[str]) -> list[str]:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        return [(await http.get(f"/api/v2/tasks/{task_id}")).json()["status"] for task_id in ids]


async def _until_running(stack: Stack, token: str, ids: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = await _statuses(stack, token, ids)
        assert not set(statuses) & set(FINAL), f"a job finished before the restart: {statuses}"
        if "running" in statuses:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no job started running on the node")


def _executions(stack: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in stack.simnodes:
        for prompt, n in node.state().get("executions", {}).items():
            counts[prompt] = counts.get(prompt, 0) + n
    return counts


@pytest.fixture
def slow_nodes(stack: Stack) -> Iterator[None]:
    for node in stack.simnodes:
        node.control(step_delay=0.1)
    yield
    for node in stack.simnodes:
        node.control(step_delay=0.01)


async def test_jobs_in_flight_finish_across_an_api_restart(stack: Stack, slow_nodes: None) -> None:
    token = stack.new_client_token()
    before = _executions(stack)
    ids = [
        stack.submit(token, "text-to-image", {"prompt": f"restart {i}", "steps": 30, "width": 64, "height": 64,
                                              "seed": i})["task_id"]
        for i in range(JOBS)
    ]  # fmt: skip
    followers = [asyncio.create_task(_follow(stack, token, task_id)) for task_id in ids]
    await _until_running(stack, token, ids)
    restarted_at = time.monotonic()
    await asyncio.to_thread(restart_api, stack)
    seen = await asyncio.wait_for(asyncio.gather(*followers), timeout=FOLLOW_TIMEOUT_S)

    # Every owner's socket ends on the final state; those still open at the restart reconnected to get it.
    assert [s.statuses[-1] for s in seen] == ["completed"] * JOBS, seen
    assert all(s.connections >= 2 or s.final_at < restarted_at for s in seen), seen
    assert any(s.connections >= 2 for s in seen), seen

    # The new process serves each job's state and its file; the client's list holds each job exactly once.
    with stack.http(token) as http:
        listed = http.get("/api/v2/tasks", params={"limit": 200}).json()
        assert sorted(t["task_id"] for t in listed["items"]) == sorted(ids) and listed["total"] == JOBS
        for task_id in ids:
            task = http.get(f"/api/v2/tasks/{task_id}").json()
            assert task["status"] == "completed" and task["attempts"] == 1 and len(task["results"]) == 1, task
            data = http.get(task["results"][0]["url"]).content
            assert hashlib.sha256(data).hexdigest() == task["results"][0]["sha256"]

    # Nothing ran twice on the nodes.
    after = _executions(stack)
    new = {prompt: n - before.get(prompt, 0) for prompt, n in after.items() if n != before.get(prompt, 0)}
    assert sorted(new.values()) == [1] * JOBS, new


def test_a_job_committed_by_an_api_that_died_before_launching_it_runs_after_restart(stack: Stack) -> None:
    """The ledger row is written before the flow run is created: if the API dies in between, the next API
    process dispatches the job; it is neither lost nor run twice."""
    from database.client import repositories as client_repo
    from database.engine import session_scope
    from database.enums import DatabaseName, Priority
    from database.shared import repositories as ledger

    client_id, secret = stack.register_client()
    token = stack.client_token(client_id, secret)
    job_id = f"orphan-{os.urandom(6).hex()}"
    with stack_environment(stack):
        with session_scope(DatabaseName.SHARED) as session:
            ledger.create_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image",
                              workflow_name="sd_basic", params={"prompt": "left behind", "steps": 2},
                              priority=Priority.NORMAL, node_group="default")
        with session_scope(DatabaseName.CLIENT) as session:
            client_repo.add_client_job(session, job_id=job_id, client_id=client_id, task_type="text_to_image")
    assert stack.task(token, job_id)["status"] == "pending"
    restart_api(stack)
    done = stack.wait_final(token, job_id)
    assert done["status"] == "completed", done
    assert done["attempts"] == 1
