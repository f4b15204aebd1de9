"""Issue 11 item 2: one permission table decides every admin route, for each role (viewer reads only; operator
manages nodes and jobs; admin manages clients, users, strategies and secrets), and docs/API.md shows that table."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api import permissions
from api.app import create_app
from api.deps import _admin_user, _node_caller
from tests.api.conftest import NODE_TOKEN, Api
from tests.api.security_live import ROLES, admin_with_role, closed_code, live_fixture, ws  # noqa: F401 - fixture

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RANK = {"viewer": 0, "operator": 1, "admin": 2}


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (their routes carry the router's prefix already)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI's included-router wrapper
            found += _api_routes(route.original_router.routes)
    return found


def _dependencies(route: APIRoute) -> set[Any]:
    seen: set[Any] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        seen.add(dependant.call)
        stack.extend(dependant.dependencies)
    return seen


def test_every_route_taking_an_admin_token_is_in_the_table_and_the_docs_show_the_table(
    api_env_vars: dict[str, str],
) -> None:
    guarded = {
        (method, route.path)
        for route in _api_routes(create_app().routes)
        if _dependencies(route) & {_admin_user, _node_caller}
        for method in route.methods or ()
    }
    assert len(guarded) > 20
    listed = {key for key in permissions.PERMISSIONS if key[0] != "WS"}
    assert guarded - listed == set(), "admin routes missing from api/permissions.py"
    assert (listed - guarded) - {("POST", "/api/v2/auth/register")} == set(), "table rows for routes that are gone"
    docs = (PROJECT_ROOT / "docs" / "API.md").read_text()
    assert permissions.markdown_table() in docs, "docs/API.md must carry api.permissions.markdown_table()"


def _request(method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """A concrete URL and a body a permitted caller may send (it may still be 404/409/422: never 403)."""
    values = {
        "task_id": str(uuid.uuid4()), "batch_id": str(uuid.uuid4()), "node_id": f"n-{uuid.uuid4().hex[:6]}", "action": "drain",
        "client_id": "cl_nobody", "user_id": "999999", "group": "default",
    }
    url = path.format(**values)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v2/admin/nodes"): {"node_id": values["node_id"], "base_url": "http://10.1.2.3:8188"},
        ("POST", "/api/v2/nodes/register"): {"node_id": values["node_id"], "base_url": "http://10.1.2.4:8188"},
        ("POST", "/api/v2/nodes/{node_id}/heartbeat"): {"queue_depth": 999},
        ("PUT", "/api/v2/admin/strategy/{group}"): {"strategy": "round_robin"},
        ("POST", "/api/v2/admin/clients"): {"client_name": f"c-{uuid.uuid4().hex[:6]}"},
        ("PATCH", "/api/v2/admin/clients/{client_id}"): {"daily_quota": 5},
        ("POST", "/api/v2/auth/register"): {"client_name": f"r-{uuid.uuid4().hex[:6]}"},
        ("POST", "/api/v2/admin/users"): {
            "username": f"u-{uuid.uuid4().hex[:6]}", "password": "long-enough-pw", "role": "viewer"
        },
        ("PATCH", "/api/v2/admin/users/{user_id}"): {"role": "viewer"},
        ("POST", "/api/v2/admin/users/{user_id}/password"): {"password": "another-long-pw"},
    }
    return url, bodies.get((method, path))


def test_each_role_gets_exactly_what_the_table_allows(live: Api) -> None:
    tokens = {role: admin_with_role(live, role)[2] for role in ROLES}
    wrong: list[str] = []
    for (method, path), needed in permissions.PERMISSIONS.items():
        if method == "WS":
            continue
        for role in ROLES:
            url, payload = _request(method, path)
            with live.http(tokens[role]) as http:
                status = http.request(method, url, json=payload).status_code
            allowed = RANK[role] >= RANK[needed]
            if (status == 403) == allowed or status in (401, 500):
                wrong.append(f"{role} {method} {url}: {status} (least role {needed})")
    assert wrong == []


def test_a_viewer_cannot_rotate_create_drain_register_or_heartbeat(live: Api) -> None:
    """The attempts of the report, one by one: each 403, and nothing changed."""
    admin = live.admin_token()
    client_id, _ = live.new_client()
    with live.http(NODE_TOKEN) as node:
        assert node.post("/api/v2/nodes/register", json={"node_id": "n1", "base_url": "http://10.0.0.7:8188"}).is_success
    viewer = admin_with_role(live, "viewer")[2]
    with live.http(viewer) as http:
        attempts = [
            http.post(f"/api/v2/admin/clients/{client_id}/rotate"),
            http.post("/api/v2/admin/clients", json={"client_name": "sneaky"}),
            http.post("/api/v2/admin/nodes/n1/drain"),
            http.post("/api/v2/nodes/register", json={"node_id": "evil", "base_url": "http://10.0.0.8:8188"}),
            http.post("/api/v2/nodes/n1/heartbeat", json={"queue_depth": 999}),
        ]
        assert [a.status_code for a in attempts] == [403] * 5
        assert all(a.json()["error"] == "forbidden" and "viewer" in a.json()["detail"] for a in attempts)
        nodes = {n["node_id"]: n for n in http.get("/api/v2/admin/nodes").json()}
        assert http.get("/api/v2/admin/clients").status_code == 200  # reading is a viewer's job
    assert "evil" not in nodes and nodes["n1"]["queue_depth"] == 0 and not nodes["n1"]["draining"]
    with live.http(admin) as http:
        assert "sneaky" not in {c["client_name"] for c in http.get("/api/v2/admin/clients").json()["items"]}


def test_an_operator_manages_nodes_and_jobs_but_not_clients_or_users(live: Api) -> None:
    operator = admin_with_role(live, "operator")[2]
    with live.http(operator) as http:
        added = http.post("/api/v2/admin/nodes", json={"node_id": "op-1", "base_url": "http://10.0.0.9:8188"})
        assert added.status_code == 201
        assert http.post("/api/v2/admin/nodes/op-1/drain").json()["draining"] is True
        assert http.post("/api/v2/admin/clients", json={"client_name": "nope"}).status_code == 403
        assert http.put("/api/v2/admin/strategy/default", json={"strategy": "random"}).status_code == 403
        made = http.post("/api/v2/admin/users", json={"username": "x", "password": "long-enough-pw", "role": "admin"})
        assert made.status_code == 403


@pytest.mark.parametrize("role", ROLES)
async def test_the_admin_feed_takes_every_role(live: Api, role: str) -> None:
    async with ws(live, "/api/v2/admin/ws", admin_with_role(live, role)[2]) as socket:
        assert await closed_code(socket, timeout=0.5) is None  # still open: accepted
