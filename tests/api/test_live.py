"""Live events: workers' events reach the owner's WebSocket fast, nobody else's; over HTTP and over Redis."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.conftest import INTERNAL_TOKEN, Api, ServerThread, free_port, poll
from tests.api.factories import job_for
from workers.progress import HttpPublisher, RedisPublisher

DEADLINE_S = 2.0
REDIS_URL = "redis://127.0.0.1:6379/0"


def _ws(api_url: str, path: str, token: str | None = None) -> Any:
    query = f"?token={token}" if token else ""
    return connect(api_url.replace("http://", "ws://") + path + query, open_timeout=5)


async def _next(socket: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout=DEADLINE_S))


@pytest.fixture
async def publisher(api: Api) -> AsyncIterator[HttpPublisher]:
    publisher = HttpPublisher(api.url, INTERNAL_TOKEN)
    yield publisher
    await publisher.aclose()


async def _subscribed(
    socket: ClientConnection, publisher: HttpPublisher, event: dict[str, Any]
) -> dict[str, Any]:
    """Publish `event` until the socket gets it: an all-jobs socket has no first message to show it is ready."""

    async def attempt() -> dict[str, Any]:
        while True:
            await publisher.publish(event)
            try:
                return json.loads(await asyncio.wait_for(socket.recv(), timeout=0.2))
            except TimeoutError:
                continue

    return await asyncio.wait_for(attempt(), timeout=DEADLINE_S)


async def test_owner_gets_state_then_events_quickly_and_others_get_nothing(
    api: Api, publisher: HttpPublisher
) -> None:
    owner_id, owner = api.new_client()
    stranger_id, stranger = api.new_client()
    job, strangers_job = job_for(owner_id), job_for(stranger_id)
    async with (
        _ws(api.url, f"/api/v2/ws/tasks/{job}", owner) as mine,
        _ws(api.url, "/api/v2/ws/tasks", stranger) as theirs,
    ):
        first = await _next(mine)
        assert first["type"] == "status" and first["task_id"] == job and first["status"] == "pending"
        marker = {"type": "status", "job_id": strangers_job, "client_id": stranger_id, "status": "running"}
        await _subscribed(theirs, publisher, marker)
        started = time.perf_counter()
        await publisher.publish(
            {
                "type": "progress",
                "job_id": job,
                "client_id": owner_id,
                "step": 3,
                "total": 20,
                "progress": 0.15,
            }
        )
        event = await _next(mine)
        latency = time.perf_counter() - started
        assert event == {"type": "progress", "task_id": job, "step": 3, "total": 20, "progress": 0.15}
        assert latency < 0.5, f"event took {latency:.3f}s"
        await publisher.publish(
            {"type": "preview", "task_id": job, "client_id": owner_id, "image": "data:image/jpeg;base64,/9j/"}
        )
        assert (await _next(mine))["type"] == "preview"
        # Events reach a socket in publish order, so the stranger's next message being its own marker proves the
        # owner's two events were never delivered to it.
        await publisher.publish({**marker, "status": "completed"})
        seen = await _next(theirs)
        assert seen["task_id"] == strangers_job and seen["status"] == "completed", seen


async def test_token_as_first_message_and_admin_feed(api: Api, publisher: HttpPublisher) -> None:
    owner_id, owner = api.new_client()
    job = job_for(owner_id)
    async with (
        _ws(api.url, "/api/v2/ws/tasks") as mine,
        _ws(api.url, "/api/v2/admin/ws", api.admin_token()) as feed,
    ):
        await mine.send(json.dumps({"token": owner}))
        event = await _subscribed(
            mine, publisher, {"type": "status", "job_id": job, "client_id": owner_id, "status": "queued"}
        )
        assert event["task_id"] == job and event["status"] == "queued" and "client_id" not in event
        assert (await _next(feed))["task_id"] == job  # the admin feed sees every client's events


async def test_wrong_owner_and_bad_token_are_told_then_closed(api: Api) -> None:
    owner_id, _ = api.new_client()
    _, stranger = api.new_client()
    job = job_for(owner_id)
    cases = [
        (f"/api/v2/ws/tasks/{job}", stranger, "not_found", 4404),
        ("/api/v2/ws/tasks", "garbage", "unauthorized", 4401),
        (f"/api/v2/ws/tasks/{job}", api.admin_token(), "unauthorized", 4401),
    ]
    for path, token, error, code in cases:
        async with _ws(api.url, path, token) as socket:
            message = await _next(socket)
            assert message["type"] == "error" and message["error"] == error
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), timeout=DEADLINE_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_internal_events_need_the_internal_token(api: Api) -> None:
    publisher = HttpPublisher(api.url, "wrong")
    try:
        response = await publisher._client.post("/internal/events", json={"type": "status", "job_id": "x"})
    finally:
        await publisher.aclose()
    assert response.status_code == 401


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_api(api: Api) -> Iterator[Api]:
    """A second API process-in-thread over the same databases with the Redis bus."""
    if not _redis_up():
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], check=True)  # fmt: skip
        poll(_redis_up, timeout=10, what="redis")
    os.environ["COMFYWS_REDIS_URL"] = REDIS_URL
    try:
        with ServerThread(free_port()) as server:
            yield Api(url=server.url, root=api.root)
    finally:
        os.environ.pop("COMFYWS_REDIS_URL", None)


async def test_events_over_redis_reach_only_the_owner(redis_api: Api) -> None:
    owner_id, owner = redis_api.new_client()
    stranger_id, stranger = redis_api.new_client()
    job, strangers_job = job_for(owner_id), job_for(stranger_id)
    publisher = RedisPublisher(REDIS_URL)
    try:
        async with (
            _ws(redis_api.url, f"/api/v2/ws/tasks/{job}", owner) as mine,
            _ws(redis_api.url, f"/api/v2/ws/tasks/{strangers_job}", stranger) as theirs,
        ):
            assert (await _next(mine))["type"] == "status"
            assert (await _next(theirs))["type"] == "status"
            started = time.perf_counter()
            await publisher.publish(
                {
                    "type": "progress",
                    "task_id": job,
                    "client_id": owner_id,
                    "step": 1,
                    "total": 2,
                    "progress": 0.5,
                }
            )
            assert (await _next(mine))["progress"] == 0.5
            assert time.perf_counter() - started < 0.5
            await publisher.publish(
                {"type": "result", "task_id": strangers_job, "client_id": stranger_id, "results": []}
            )
            assert (await _next(theirs))["type"] == "result"  # first thing the stranger sees is its own event
    finally:
        await publisher.aclose()
