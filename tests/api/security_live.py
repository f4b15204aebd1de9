"""Helpers of the security tests (tests/api/test_security_*.py): a live API per test over the `databases`
fixture (SQLite and MariaDB), admin accounts of each role, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.throttle import get_throttle
from tests.api.conftest import ADMIN_PASSWORD, Api, ServerThread, free_port, reset_caches
from tests.fixtures.databases import DatabaseUrls
from workers.progress import HttpPublisher

ROLES = ("viewer", "operator", "admin")


@pytest.fixture(name="live")
def live_fixture(databases: DatabaseUrls, api_env_vars: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """A fresh API over empty, migrated databases of each backend; set env with monkeypatch before asking for it.

    Throttle windows live in this process's memory: each test starts with none."""
    monkeypatch.setenv("COMFYWS_API_LAUNCH_WAIT_S", "0")
    reset_caches()
    get_throttle.cache_clear()
    with ServerThread(free_port()) as server:
        yield Api(url=server.url, root=Path(api_env_vars["COMFYWS_DATA_DIR"]).parent)
    monkeypatch.undo()
    os.environ.update(api_env_vars)
    reset_caches()
    get_throttle.cache_clear()


def login(api: Api, username: str, password: str) -> httpx.Response:
    with api.http() as http:
        return http.post("/admin/auth/login", json={"username": username, "password": password})


def admin_with_role(api: Api, role: str) -> tuple[int, str, str]:
    """(user id, username, access token) of a new admin account with `role` (the bootstrap admin for admin)."""
    if role == "admin":
        response = login(api, "admin", ADMIN_PASSWORD)
        assert response.status_code == 200, response.text
        with api.http(response.json()["access_token"]) as http:
            users = http.get("/api/v2/admin/users").json()
        return next(u["id"] for u in users if u["username"] == "admin"), "admin", response.json()["access_token"]
    username, password = f"{role}-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    with api.http(api.admin_token()) as http:
        created = http.post("/api/v2/admin/users", json={"username": username, "password": password, "role": role})
    assert created.status_code == 201, created.text
    response = login(api, username, password)
    assert response.status_code == 200, response.text
    return created.json()["id"], username, response.json()["access_token"]


def ws(api: Api, path: str, token: str) -> Any:
    return connect(api.url.replace("http://", "ws://") + f"{path}?token={token}", open_timeout=5)


async def closed_code(socket: ClientConnection, *, timeout: float) -> int | None:
    """Read until the server closes the socket; its close code (None when still open after `timeout`)."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in socket:
                pass

    try:
        await asyncio.wait_for(drain(), timeout=timeout)
    except TimeoutError:
        return None
    return socket.close_code


async def subscribed(socket: ClientConnection, event: dict[str, Any], internal_token: str, api: Api) -> None:
    """Publish `event` until the socket relays it: then the server has authenticated and tracks the socket."""
    publisher = HttpPublisher(api.url, internal_token)
    try:
        async def attempt() -> None:
            while True:
                await publisher.publish(event)
                try:
                    await asyncio.wait_for(socket.recv(), timeout=0.2)
                    return
                except TimeoutError:
                    continue

        await asyncio.wait_for(attempt(), timeout=10)
    finally:
        await publisher.aclose()


def body(response: httpx.Response) -> dict[str, Any]:
    data = json.loads(response.text)
    assert isinstance(data, dict)
    return data
