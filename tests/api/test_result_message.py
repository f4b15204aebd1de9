"""The WebSocket `result` message docs/API.md promises: sent when a job completes (after its `completed` status)
and on connecting to a completed job, naming each file by its URL, never by its place in the outputs folder."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.api.conftest import INTERNAL_TOKEN, Api, reset_caches
from tests.api.factories import job_for, result_for
from tests.fixtures.stack import Stack
from workers.progress import HttpPublisher

RESULT_KEYS = {"index", "url", "filename", "kind", "content_type", "size", "sha256"}


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


def _ws(api_url: str, path: str, token: str) -> Any:
    return connect(api_url.replace("http://", "ws://") + f"{path}?token={token}", open_timeout=10)


async def _until(socket: ClientConnection, kind: str, *, timeout: float) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == kind:
                return dict(message)

    return await asyncio.wait_for(read(), timeout=timeout)


async def test_a_completion_event_becomes_status_then_result_with_urls(api: Api) -> None:
    owner_id, token = api.new_client()
    job = job_for(owner_id)
    stored = {"index": 0, "filename": "00-a.png", "path": f"{job}/00-a.png", "kind": "image",
              "content_type": "image/png", "size": 3, "sha256": "ab" * 32}  # fmt: skip
    publisher = HttpPublisher(api.url, INTERNAL_TOKEN)
    try:
        async with _ws(api.url, f"/api/v2/ws/tasks/{job}", token) as socket:
            assert (await _until(socket, "status", timeout=5))["status"] == "pending"
            await publisher.publish({"type": "status", "job_id": job, "client_id": owner_id,
                                     "status": "completed", "progress": 1.0, "results": [stored]})  # fmt: skip
            status = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
            result = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
    finally:
        await publisher.aclose()
    assert status["type"] == "status" and status["status"] == "completed"
    assert result["type"] == "result" and result["task_id"] == job
    assert [set(r) for r in result["results"]] == [RESULT_KEYS]  # no "path": clients never see the folder
    assert result["results"][0]["url"] == f"/api/v2/tasks/{job}/results/0"
    assert status["results"] == result["results"]


async def test_connecting_to_a_completed_job_sends_its_result(api: Api) -> None:
    owner_id, token = api.new_client()
    job = job_for(owner_id)
    result_for(job, b"\x89PNG-ish")
    async with _ws(api.url, f"/api/v2/ws/tasks/{job}", token) as socket:
        first = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
        second = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
    assert first["type"] == "status" and first["status"] == "completed"
    assert second["type"] == "result" and second["results"][0]["url"] == f"/api/v2/tasks/{job}/results/0"


@pytest.mark.prefect
async def test_a_real_job_sends_its_result_message_and_the_url_serves_the_file(stack: Stack) -> None:
    token = stack.new_client_token()
    all_jobs = _ws(stack.api_url, "/api/v2/ws/tasks", token)
    async with all_jobs as socket:
        await asyncio.sleep(0)  # the socket is subscribed once accepted; the job is submitted after that
        task = await asyncio.to_thread(
            stack.submit, token, "text-to-image", {"prompt": "a result", "steps": 2, "width": 64, "height": 64}
        )
        result = await _until(socket, "result", timeout=90)
    assert result["task_id"] == task["task_id"] and len(result["results"]) == 1
    entry = result["results"][0]
    assert set(entry) == RESULT_KEYS
    with stack.http(token) as http:
        file = http.get(entry["url"])
    assert file.status_code == 200 and len(file.content) == entry["size"]
