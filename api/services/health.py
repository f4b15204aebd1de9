"""Readiness: the databases answer, the Prefect server answers, and some node can take work."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.launcher import prefect_api_url
from comfyws.config import get_config
from comfyws.http import async_client
from database.admin import repositories as admin_repo
from database.engine import session_scope
from database.enums import DatabaseName


async def readiness() -> tuple[bool, dict[str, Any]]:
    databases = await run_in_threadpool(_databases)
    prefect = await _prefect()
    nodes = await run_in_threadpool(_nodes) if databases[DatabaseName.ADMIN.value] == "ok" else {"usable": 0}
    ready = all(v == "ok" for v in databases.values()) and prefect["ok"] and nodes["usable"] > 0
    return ready, {"ready": ready, "databases": databases, "prefect": prefect, "nodes": nodes}


def _databases() -> dict[str, str]:
    result = {}
    for name in DatabaseName:
        try:
            with session_scope(name) as session:
                session.execute(text("SELECT 1"))
            result[name.value] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            result[name.value] = f"error: {type(exc).__name__}: {exc}".splitlines()[0]
    return result


async def _prefect() -> dict[str, Any]:
    url = prefect_api_url()
    if not url:
        return {"ok": False, "error": "PREFECT_API_URL is not set"}
    try:
        async with async_client(timeout=3.0) as client:
            response = await client.get(f"{url.rstrip('/')}/health")
        return {"ok": response.status_code == 200, "status_code": response.status_code}
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _nodes() -> dict[str, int]:
    with session_scope(DatabaseName.ADMIN) as session:
        usable = admin_repo.count_usable_nodes(session)
    static = len(get_config().nodes.static_nodes)
    return {"usable": usable + static, "registered_usable": usable, "static": static}
