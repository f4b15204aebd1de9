"""The run-batch flow against the real stack: the scheduled nightly-batch deployment run once from a spec file
(its ledger batch, child runs, artifact and dated folder), and batches that outlive restarts of the API and the
worker with every item ending once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from tests.fixtures.prefect_server import start_worker, wait_until
from tests.fixtures.stack import Stack, restart_api, stack_environment

pytestmark = pytest.mark.prefect

FINAL_BATCH = ("completed", "completed_with_errors", "failed", "cancelled")
FINAL_JOB = ("completed", "failed", "cancelled")


def _batch(stack: Stack, token: str, batch_id: str) -> dict[str, Any]:
    with stack.http(token) as http:
        response = http.get(f"/api/v2/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _deployment(name: str) -> Any:
    async with get_client() as client:
        return await client.read_deployment_by_name(name)


async def _run_now(name: str, parameters: dict[str, Any]) -> str:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return str(run.id)


async def _flow_run(run_id: str) -> Any:
    async with get_client() as client:
        return await client.read_flow_run(run_id)


async def _artifact(key: str) -> Any:
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        return found[0] if found else None


def test_nightly_batch_is_deployed_with_its_schedule_off(stack: Stack) -> None:
    with stack_environment(stack):
        deployment = asyncio.run(_deployment("run-batch/nightly-batch"))
    assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
    assert [s.active for s in deployment.schedules] == [False]
    assert deployment.parameters["spec"] == "deployments/batches/nightly.yaml"
    assert deployment.work_pool_name == "comfyui-default"


def test_a_scheduled_run_creates_a_ledger_batch_of_its_client_with_an_artifact(stack: Stack, tmp_path: Path) -> None:
    name = f"studio-{os.urandom(3).hex()}"
    client_id, secret = stack.register_client(name)
    token = stack.client_token(client_id, secret)
    (tmp_path / "extra.csv").write_text("prompt,seed\nfrom csv,41\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "client": name, "task_type": "text_to_image", "name": "nightly test",
        "defaults": {"width": 64, "height": 64, "steps": 2},
        "items": [{"prompt": "one", "seed": 1}, {"prompt": "two", "seed": 2}, {"prompt": "bad", "hue": 3}],
        "csv": "extra.csv",
    }))
    out = tmp_path / "out"
    stale = out / "2001-01-01"
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))
    with stack_environment(stack):
        run_id = asyncio.run(_run_now("run-batch/nightly-batch", {
            "spec": str(spec), "output_dir": str(out / "{date}"), "retention_days": 7,
        }))
        run = wait_until(lambda: (r := asyncio.run(_flow_run(run_id))).state.is_final() and r,
                         timeout=120, interval=0.5, what="the nightly run to finish")
        assert run.state.is_completed(), run.state
    with stack.http(token) as http:
        batches = http.get("/api/v2/batches").json()["items"]
    assert len(batches) == 1
    done = _batch(stack, token, batches[0]["batch_id"])
    assert done["status"] == "completed_with_errors" and done["name"] == "nightly test"
    assert done["counts"]["completed"] == 3 and done["counts"]["invalid"] == 1
    with stack_environment(stack):
        artifact = asyncio.run(_artifact(f"batch-{done['batch_id']}"))
        child = asyncio.run(_flow_run(_admin_run_id(stack, done["items"][0]["task_id"])))
    assert artifact is not None and artifact.type == "markdown"
    assert "completed_with_errors" in artifact.data and "| completed | 3 |" in artifact.data
    assert "hue" in artifact.data  # the invalid item's reason
    assert child.parent_task_run_id is not None  # an item run is a child of the batch's run
    dated = out / datetime.now(UTC).strftime("%Y-%m-%d")
    manifest = json.loads((dated / "manifest.json").read_text())
    assert len([p for p in dated.iterdir() if p.suffix == ".png"]) == 3 and len(manifest["items"]) == 3
    assert not stale.exists()  # older than the retention


def _admin_run_id(stack: Stack, task_id: str) -> str:
    with stack.http(stack.admin_token()) as http:
        return str(http.get(f"/api/v2/admin/tasks/{task_id}").json()["flow_run_id"])


def _submit(stack: Stack, token: str, count: int) -> str:
    with stack.http(token) as http:
        response = http.post("/api/v2/batches", json={
            "task_type": "text-to-image", "defaults": {"width": 64, "height": 64, "steps": 20},
            "items": [{"prompt": f"durable {i}", "seed": i} for i in range(count)],
        })
    assert response.status_code == 202, response.text
    return str(response.json()["batch_id"])


def _wait_end(stack: Stack, token: str, batch_id: str, *, timeout: float) -> dict[str, Any]:
    try:
        return wait_until(lambda: (b := _batch(stack, token, batch_id))["status"] in FINAL_BATCH and b,  # type: ignore[no-any-return]
                          timeout=timeout, interval=0.5, what="the batch to end")
    except AssertionError:
        with stack.http(stack.admin_token()) as http:
            stuck = [http.get(f"/api/v2/admin/tasks/{i['task_id']}").json() for i in _batch(
                stack, token, batch_id)["items"] if i["status"] not in FINAL_JOB]
        details = [(t["status"], t["node_id"], t["flow_run_id"], t["error"]) for t in stuck]
        raise AssertionError(f"batch {batch_id} did not end; unfinished items: {details}") from None


def _assert_each_item_ended_once(stack: Stack, token: str, done: dict[str, Any], count: int) -> None:
    statuses = [item["status"] for item in done["items"]]
    assert all(s in FINAL_JOB for s in statuses) and len(statuses) == count, statuses
    for item in done["items"]:
        task = stack.task(token, item["task_id"])
        assert len(task["results"]) == (1 if task["status"] == "completed" else 0), task
    with stack.http(stack.admin_token()) as http:
        attempts = [http.get(f"/api/v2/admin/tasks/{i['task_id']}").json()["attempt_list"] for i in done["items"]]
    prompts = [a["prompt_id"] for per_item in attempts for a in per_item]
    assert len(prompts) == len(set(prompts))  # no prompt twice
    succeeded = sum(1 for per_item in attempts for a in per_item if a["status"] == "succeeded")
    assert succeeded == statuses.count("completed")


def test_a_batch_outlives_a_restart_of_the_api(stack: Stack) -> None:
    token = stack.new_client_token()
    batch_id = _submit(stack, token, 12)
    wait_until(lambda: _batch(stack, token, batch_id)["counts"].get("completed", 0) >= 2,
               timeout=90, interval=0.2, what="the first items")
    restart_api(stack)
    done = _wait_end(stack, token, batch_id, timeout=180)
    assert done["status"] == "completed", done
    _assert_each_item_ended_once(stack, token, done, 12)


def test_a_batch_outlives_a_killed_worker(stack: Stack) -> None:
    """The feeder dies with the worker; the API's keeper starts a new one on the new worker."""
    token = stack.new_client_token()
    batch_id = _submit(stack, token, 12)
    wait_until(lambda: _batch(stack, token, batch_id)["counts"].get("completed", 0) >= 2,
               timeout=90, interval=0.2, what="the first items")
    worker = next(w for w in stack.workers if w.process.poll() is None)  # earlier tests may have killed some
    stack.workers.remove(worker)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    with stack_environment(stack):
        stack.workers.append(start_worker("default", stack.root, concurrency=8, poll_interval=5.0))
    done = _wait_end(stack, token, batch_id, timeout=180)
    assert done["status"] in ("completed", "completed_with_errors"), done
    _assert_each_item_ended_once(stack, token, done, 12)
