"""Issue 11 item 7: no secret in the logs of a real run. `comfyws api` (uvicorn, access log on) writes to a file;
a client registers, takes a token, opens a WebSocket with ?token=, calls with an Authorization header and fails a
login; none of those secrets appears in the file, and the redaction marks show where they were."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from api.access_log import REDACTED
from tests.api.conftest import ADMIN_PASSWORD, PROJECT_ROOT, free_port, poll


@pytest.fixture
def api_process(tmp_path: Path, api_env_vars: dict[str, str]) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "data"
    env = os.environ | api_env_vars | {
        "COMFYWS_DATA_DIR": str(data),
        "COMFYWS_DB_CLIENT_URL": f"sqlite:///{data / 'client.db'}",
        "COMFYWS_DB_ADMIN_URL": f"sqlite:///{data / 'admin.db'}",
        "COMFYWS_DB_SHARED_URL": f"sqlite:///{data / 'shared.db'}",
    }
    port, log_path = free_port(), tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "comfyws", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        poll(up, timeout=60, what="comfyws api")
        yield url, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_tokens_secrets_and_authorization_headers_never_reach_the_log(api_process: tuple[str, Path]) -> None:
    url, log_path = api_process
    with httpx.Client(base_url=url, timeout=10) as http:
        registered = http.post("/api/v2/auth/register", json={"client_name": "log-reader"}).json()
        client_id, secret = registered["client_id"], registered["client_secret"]
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        token = http.post("/api/v2/auth/token", data=form).json()["access_token"]
        http.get("/api/v2/tasks", headers={"Authorization": f"Bearer {token}"})
        http.get(f"/api/v2/tasks?token={token}&client_secret={secret}")
        http.post("/admin/auth/login", json={"username": "admin", "password": "not-" + ADMIN_PASSWORD})
        admin = http.post("/admin/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()

    async def sockets() -> None:
        ws_url = url.replace("http://", "ws://")
        async with connect(f"{ws_url}/api/v2/ws/tasks?token={token}", open_timeout=5):
            pass
        async with connect(f"{ws_url}/api/v2/admin/ws?token={admin['access_token']}", open_timeout=5):
            pass

    asyncio.run(sockets())

    def logged() -> str:
        text = log_path.read_text(errors="replace")
        return text if "/api/v2/admin/ws" in text else ""

    text = poll(logged, timeout=10, what="the WebSocket lines in the log")
    assert "WebSocket /api/v2/ws/tasks?token=" + REDACTED in text
    for value in (token, secret, admin["access_token"], admin["refresh_token"], ADMIN_PASSWORD):
        assert value not in text
    # The token's middle part alone would still identify it: not even that.
    assert token.split(".")[1] not in text
