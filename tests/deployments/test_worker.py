"""The in-process worker against a real Prefect server: runs, wake-up latency, cancellation, crash recovery, priority."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from comfyws.config import NodeGroup, NodesConfig, ServiceConfig
from comfyws.settings import PROJECT_ROOT
from deployments.names import DEFAULT_QUEUE, deployment_name, job_tag, pool_name
from deployments.setup import ensure_infrastructure

pytestmark = [pytest.mark.prefect, pytest.mark.timeout(120)]
TEST_YAML = Path(__file__).parent / "prefect_test.yaml"


async def _deploy(group: str) -> None:
    config = ServiceConfig(nodes=NodesConfig(groups={group: NodeGroup()}))
    await ensure_infrastructure(config, prefect_yaml=TEST_YAML, project_root=PROJECT_ROOT)


@pytest.fixture
async def group(prefect_server: str) -> str:
    """A fresh node group (= work pool) per test, so tests never see each other's runs."""
    name = f"t{uuid.uuid4().hex[:8]}"
    await _deploy(name)
    return name


async def _start(flow: str, group: str, **kwargs: Any) -> UUID:
    queue = kwargs.pop("queue", None)
    tags = kwargs.pop("tags", None)
    run = await run_deployment(
        deployment_name(flow, group), parameters=kwargs, timeout=0, work_queue_name=queue, tags=tags
    )
    return run.id


async def _wait_run(run_id: UUID, done: Callable[[FlowRun], bool], *, timeout: float = 30) -> FlowRun:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(run_id)
            if done(run):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run.state_name} after {timeout}s")
            await asyncio.sleep(0.02)


def _final(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


async def _wait_file(path: Path, *, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout}s")
        await asyncio.sleep(0.02)
    return path.read_text()


async def test_scheduled_events_wake_the_worker_well_under_a_second(group: str, worker_factory: Any) -> None:
    worker_factory(group, poll_interval=60.0)  # a poll could not explain sub-second pick-up
    await _wait_run(await _start("quick-test-flow", group, tag="warm-up"), _final)
    latencies = []
    for i in range(3):
        started = time.monotonic()
        run = await _wait_run(await _start("quick-test-flow", group, tag=f"r{i}"), _final)
        latencies.append(time.monotonic() - started)
        assert run.state is not None and run.state.is_completed()
    assert statistics.median(latencies) < 1.0, latencies


async def test_a_jobs_run_is_taken_from_its_event_and_a_paused_queue_holds_runs_until_resumed(
    group: str, worker_factory: Any
) -> None:
    worker_factory(group, poll_interval=60.0)  # only the event path (and wake-ups) can start runs in time
    tags = [job_tag(str(uuid.uuid4()))]  # what the API puts on each job's run
    first = await _wait_run(await _start("quick-test-flow", group, tag="job", tags=tags), _final, timeout=10)
    assert first.state is not None and first.state.is_completed()
    async with get_client() as client:
        queue = await client.read_work_queue_by_name(DEFAULT_QUEUE, work_pool_name=pool_name(group))
        await client.update_work_queue(queue.id, is_paused=True)
        await asyncio.sleep(1.0)  # the pause reaches the worker as an event
        held = await _start("quick-test-flow", group, tag="held", tags=tags)
        await asyncio.sleep(2.0)
        waiting = await client.read_flow_run(held)
        assert waiting.state is not None and waiting.state.is_scheduled(), waiting.state
        await client.update_work_queue(queue.id, is_paused=False)
    resumed = await _wait_run(held, _final, timeout=10)
    assert resumed.state is not None and resumed.state.is_completed()


async def test_cancelling_one_run_leaves_the_other_and_the_worker_running(
    group: str, worker_factory: Any, tmp_path: Path
) -> None:
    worker = worker_factory(group, concurrency=4)
    doomed = await _start("gated-test-flow", group, directory=str(tmp_path), tag="doomed")
    kept = await _start("gated-test-flow", group, directory=str(tmp_path), tag="kept")
    await _wait_file(tmp_path / "started-doomed")
    await _wait_file(tmp_path / "started-kept")

    async with get_client() as client:
        await client.set_flow_run_state(doomed, Cancelling(message="user cancelled"))
    cancelled = await _wait_run(doomed, _final)
    assert cancelled.state is not None and cancelled.state.is_cancelled()
    assert (tmp_path / "cancel-hook-doomed").exists()

    still = await _wait_run(kept, lambda r: r.state is not None)
    assert still.state is not None and still.state.is_running()
    (tmp_path / "release-kept").touch()
    finished = await _wait_run(kept, _final)
    assert finished.state is not None and finished.state.is_completed()
    assert worker.process.poll() is None, worker.output()


async def test_a_run_of_a_killed_worker_is_picked_up_by_the_next(
    group: str, worker_factory: Any, tmp_path: Path
) -> None:
    first = worker_factory(group)
    run_id = await _start("gated-test-flow", group, directory=str(tmp_path), tag="survivor")
    await _wait_file(tmp_path / "started-survivor")
    first.kill()
    (tmp_path / "release-survivor").touch()

    worker_factory(group)
    run = await _wait_run(run_id, _final)
    assert run.state is not None and run.state.is_completed()
    assert (tmp_path / "started-survivor").read_text().count("attempt") == 2


async def test_a_high_priority_run_overtakes_waiting_normal_runs(
    group: str, worker_factory: Any, tmp_path: Path
) -> None:
    worker_factory(group, concurrency=1)
    blocker = await _start("gated-test-flow", group, directory=str(tmp_path), tag="blocker")
    await _wait_file(tmp_path / "started-blocker")
    for tag in ("n1", "n2", "high"):
        (tmp_path / f"release-{tag}").touch()
    normal = [await _start("gated-test-flow", group, directory=str(tmp_path), tag=t) for t in ("n1", "n2")]
    high = await _start("gated-test-flow", group, directory=str(tmp_path), tag="high", queue="high")
    (tmp_path / "release-blocker").touch()

    runs = [await _wait_run(r, _final) for r in (blocker, *normal, high)]
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    high_run, normal_runs = runs[-1], runs[1:3]
    assert all(high_run.start_time < n.start_time for n in normal_runs)  # type: ignore[operator]


async def test_ensure_infrastructure_is_idempotent(group: str) -> None:
    async def snapshot() -> tuple[Any, ...]:
        async with get_client() as client:
            pool = await client.read_work_pool(f"comfyui-{group}")
            queues = {q.name: (q.id, q.priority) for q in await client.read_work_queues(f"comfyui-{group}")}
            deployment = await client.read_deployment_by_name(deployment_name("quick-test-flow", group))
        return pool.id, pool.type, queues, deployment.id, deployment.work_queue_name, pool.base_job_template

    before = await snapshot()
    await _deploy(group)
    after = await snapshot()
    assert before == after
    _, pool_type, queues, _, queue, template = after
    assert pool_type == "comfyws-inprocess" and queue == "normal"
    assert template["variables"]["properties"] == {}  # runs execute in the worker: no per-run env or command
    assert [queues[q][1] for q in ("high", "normal", "low")] == [1, 2, 3]
