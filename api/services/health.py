"""Readiness: the databases answer, the Prefect server answers, and some node can take work."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.launcher import prefect_api_url
from comfyws.http import async_client
from database.engine import session_scope
from database.enums import DatabaseName, NodeStatus
from workers import registry


async def readiness() -> tuple[bool, dict[str, Any]]:
    databases = await run_in_threadpool(_databases)
    prefect = await _prefect()
    if databases[DatabaseName.ADMIN.value] == "ok" and databases[DatabaseName.SHARED.value] == "ok":
        nodes = await run_in_threadpool(_nodes)
    else:
        nodes = {"usable": 0, "groups_without_node": [], "error": "the admin database is down"}
    ready = (all(v == "ok" for v in databases.values()) and prefect["ok"] and nodes["usable"] > 0
             and not nodes["groups_without_node"])
    body: dict[str, Any] = {"ready": ready, "databases": databases, "prefect": prefect, "nodes": nodes}
    if not ready:
        body["detail"] = _why_not(databases, prefect, nodes)
    return ready, body


def _why_not(databases: dict[str, str], prefect: dict[str, Any], nodes: dict[str, Any]) -> str:
    reasons = [f"database {name}: {state}" for name, state in databases.items() if state != "ok"]
    if not prefect["ok"]:
        reasons.append("the Prefect server does not answer")
    if nodes["groups_without_node"]:
        reasons.append(f"no healthy node in group(s) {', '.join(nodes['groups_without_node'])}")
    elif not nodes["usable"]:
        reasons.append("no node registered")
    return "; ".join(reasons)


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


def _nodes() -> dict[str, Any]:
    """Each registered node once (static nodes are in the registry too), and the groups none of whose nodes can
    take work (all unhealthy, disabled or draining): jobs of those groups wait (`outage_wait_s`)."""
    snapshots = registry.list_snapshots()
    usable: dict[str, int] = {}
    for node in snapshots:
        up = node.enabled and not node.draining and node.status != NodeStatus.UNHEALTHY
        usable[node.group] = usable.get(node.group, 0) + int(up)
    return {
        "usable": sum(usable.values()),
        "registered": len(snapshots),
        "groups": usable,
        "groups_without_node": sorted(group for group, count in usable.items() if count == 0),
    }
