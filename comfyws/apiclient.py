"""A small client of the service's own REST API, for the CLI and the benchmarks."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from comfyws.settings import get_settings


class ApiError(Exception):
    """The API answered with an error body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


def _check(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.is_error:
        raise ApiError(response.status_code, body)
    return body


class ServiceClient:
    """Registers (once), gets tokens and submits/watches jobs over the public API."""

    def __init__(self, base_url: str, *, credentials_path: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30.0)
        self.credentials_path = credentials_path or get_settings().data_dir / "cli-credentials.json"
        self.token: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def login(self, *, client_name: str | None = None) -> None:
        """Use saved client credentials for this API, registering a client the first time."""
        creds = self._saved()
        if creds is None:
            name = client_name or f"cli-{os.getpid()}-{os.urandom(3).hex()}"
            creds = _check(await self.http.post("/api/v2/auth/register",
                                                json={"client_name": name, "description": "comfyws CLI"}))
            self._save(creds)
        token = _check(await self.http.post("/api/v2/auth/token", json={
            "client_id": creds["client_id"], "client_secret": creds["client_secret"]}))
        self.token = token["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def _saved(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.credentials_path.read_text())
        except (OSError, ValueError):
            return None
        entry = data.get(self.base_url)
        return entry if isinstance(entry, dict) else None

    def _save(self, creds: dict[str, str]) -> None:
        try:
            data = json.loads(self.credentials_path.read_text())
        except (OSError, ValueError):
            data = {}
        data[self.base_url] = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
        self.credentials_path.parent.mkdir(parents=True, exist_ok=True)
        self.credentials_path.write_text(json.dumps(data, indent=2))
        self.credentials_path.chmod(0o600)

    async def upload(self, path: Path) -> dict[str, Any]:
        files = {"file": (path.name, path.read_bytes())}
        return _check(await self.http.post("/api/v2/upload/image", files=files))  # type: ignore[no-any-return]

    async def submit(self, task_type: str, body: dict[str, Any]) -> dict[str, Any]:
        path = "/api/v2/tasks/" + task_type.replace("_", "-")
        return _check(await self.http.post(path, json=body))  # type: ignore[no-any-return]

    async def task(self, task_id: str) -> dict[str, Any]:
        return _check(await self.http.get(f"/api/v2/tasks/{task_id}"))  # type: ignore[no-any-return]

    async def download(self, url: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        response = await self.http.get(url)
        if response.is_error:
            _check(response)
        dest.write_bytes(response.content)
        return dest

    async def submit_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        return _check(await self.http.post("/api/v2/batches", json=body))  # type: ignore[no-any-return]

    async def upload_batch(self, path: Path, form: dict[str, str]) -> dict[str, Any]:
        files = {"file": (path.name, path.read_bytes(), "text/plain")}
        response = await self.http.post("/api/v2/batches/upload", files=files, data=form)
        return _check(response)  # type: ignore[no-any-return]

    async def batch(self, batch_id: str) -> dict[str, Any]:
        return _check(await self.http.get(f"/api/v2/batches/{batch_id}"))  # type: ignore[no-any-return]

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return _check(await self.http.delete(f"/api/v2/batches/{batch_id}"))  # type: ignore[no-any-return]

    async def download_stream(self, url: str, dest: Path) -> Path:
        """A large answer (a batch's zip) written to `dest` as it arrives."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        async with self.http.stream("GET", url, timeout=None) as response:
            if response.is_error:
                await response.aread()
                _check(response)
            with dest.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        return dest

    async def watch(self, task_id: str) -> AsyncIterator[dict[str, Any]]:
        """Events of one job from the API's WebSocket until it reaches a final state."""
        ws_url = self.base_url.replace("http", "ws", 1) + f"/api/v2/ws/tasks/{task_id}?token={self.token}"
        async with websockets.connect(ws_url, max_size=None) as socket:
            async for raw in socket:
                event = json.loads(raw)
                yield event
                if event.get("type") == "status" and event.get("status") in ("completed", "failed", "cancelled"):
                    return
