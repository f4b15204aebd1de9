"""The API served by a real uvicorn on a free port, over fresh SQLite databases in a temp directory."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.settings import get_api_settings
from comfyws.config import get_config
from comfyws.settings import get_settings
from database.engine import reset_engines
from workflows.catalog import get_catalog

ADMIN_PASSWORD = "api-test-admin-password"
NODE_TOKEN = "api-test-node-token"
INTERNAL_TOKEN = "api-test-internal-token"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def reset_caches() -> None:
    for cached in (get_settings, get_api_settings, get_config, get_catalog):
        cached.cache_clear()
    reset_engines()


class ServerThread:
    """uvicorn in a thread with its own event loop: real sockets, the same process's databases."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(), host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        poll(lambda: self.server.started or not self.thread.is_alive(), timeout=30, what="uvicorn start")
        assert self.server.started, "the API did not start (see the log above)"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Api:
    url: str
    root: Path

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def register(self, name: str | None = None) -> tuple[str, str]:
        with self.http() as http:
            body = http.post(
                "/api/v2/auth/register", json={"client_name": name or f"c-{uuid.uuid4().hex[:8]}"}
            )
        assert body.status_code == 201, body.text
        data = body.json()
        return data["client_id"], data["client_secret"]

    def token(self, client_id: str, secret: str) -> str:
        with self.http() as http:
            response = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": secret})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def new_client(self) -> tuple[str, str]:
        """(client_id, token) of a freshly registered client."""
        client_id, secret = self.register()
        return client_id, self.token(client_id, secret)

    def admin_token(self) -> str:
        with self.http() as http:
            response = http.post("/admin/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def api_env(root: Path, prefect_url: str) -> dict[str, str]:
    data = root / "data"
    return {
        "COMFYWS_ENVIRONMENT": "test",
        "COMFYWS_DATA_DIR": str(data),
        "COMFYWS_OUTPUTS_DIR": str(root / "outputs"),
        "COMFYWS_UPLOADS_DIR": str(root / "uploads"),
        "COMFYWS_WORKFLOWS_DIR": str(PROJECT_ROOT / "workflows"),
        "COMFYWS_CONFIG_PATH": str(PROJECT_ROOT / "config.yaml"),
        "COMFYWS_DB_CLIENT_URL": f"sqlite:///{data / 'client.db'}",
        "COMFYWS_DB_ADMIN_URL": f"sqlite:///{data / 'admin.db'}",
        "COMFYWS_DB_SHARED_URL": f"sqlite:///{data / 'shared.db'}",
        "COMFYWS_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "COMFYWS_API_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COMFYWS_API_NODE_TOKEN": NODE_TOKEN,
        "COMFYWS_API_JWT_SECRET": "api-test-jwt-secret-0123456789abcdef",
        "COMFYWS_API_PREFECT_API_URL": prefect_url,
        "COMFYWS_API_PREFECT_RETRIES": "1",
        "COMFYWS_API_MAX_UPLOAD_BYTES": str(64 * 1024),
        "COMFYWS_API_REGISTRATIONS_PER_HOUR": "100000",  # the package's tests register clients by the hundred
        "COMFYWS_API_ADMIN_TOKEN_TTL_SECONDS": "900",  # the default, whatever a session-wide stack set before
    }


@pytest.fixture(scope="package")
def api_env_vars(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of the package's API; Prefect points at a port nothing listens on (the 503 path)."""
    root = tmp_path_factory.mktemp("api")
    env = api_env(root, f"http://127.0.0.1:{free_port()}/api")
    saved = {k: os.environ.get(k) for k in [*env, "COMFYWS_REDIS_URL"]}
    os.environ.update(env)
    os.environ.pop("COMFYWS_REDIS_URL", None)
    reset_caches()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_caches()


@pytest.fixture(scope="package")
def api(api_env_vars: dict[str, str]) -> Iterator[Api]:
    with ServerThread(free_port()) as server:
        yield Api(url=server.url, root=Path(api_env_vars["COMFYWS_DATA_DIR"]).parent)
