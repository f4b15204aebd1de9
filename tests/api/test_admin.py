"""Admin routes: nodes and flags, node self-registration, strategies, jobs, clients, users, reports, audit; the
health monitor's node events on the admin feed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from comfyws.config import HealthConfig
from comfyws.settings import get_settings
from tests.api.conftest import ADMIN_PASSWORD, NODE_TOKEN, Api, free_port
from tests.api.factories import job_for
from workers.health import HealthMonitor
from workers.progress import HttpPublisher


def test_admin_routes_need_an_admin_token(api: Api) -> None:
    with api.http() as http:
        for path in ("/api/v2/admin/nodes", "/api/v2/admin/clients", "/api/v2/admin/overview"):
            assert http.get(path).status_code == 401


def test_nodes_add_flag_health_remove_with_audit(api: Api) -> None:
    admin = api.admin_token()
    node = {"node_id": "gpu-a", "base_url": "http://10.0.0.5:8188", "group": "default", "max_concurrent": 2}
    with api.http(admin) as http:
        assert http.post("/api/v2/admin/nodes", json=node).status_code == 201
        assert http.post("/api/v2/admin/nodes", json=node).status_code == 409
        assert (
            http.post("/api/v2/admin/nodes", json={**node, "node_id": "x", "base_url": "ftp://a"}).status_code
            == 422
        )
        drained = http.post("/api/v2/admin/nodes/gpu-a/drain").json()
        disabled = http.post("/api/v2/admin/nodes/gpu-a/disable").json()
        assert drained["draining"] is True and disabled["enabled"] is False
        listed = {n["node_id"]: n for n in http.get("/api/v2/admin/nodes").json()}
        assert listed["gpu-a"]["draining"] and not listed["gpu-a"]["enabled"]
        assert http.post("/api/v2/admin/nodes/gpu-a/undrain").json()["draining"] is False
        assert http.post("/api/v2/admin/nodes/gpu-a/enable").json()["enabled"] is True
        assert http.post("/api/v2/admin/nodes/gpu-a/explode").status_code == 422
        health = http.get("/api/v2/admin/nodes/gpu-a/health").json()
        assert health["node"]["node_id"] == "gpu-a" and health["checks"] == []
        assert http.delete("/api/v2/admin/nodes/gpu-a").status_code == 204
        assert http.get("/api/v2/admin/nodes/gpu-a/health").status_code == 404
        actions = [
            row["action"] for row in http.get("/api/v2/admin/audit").json() if row["target"] == "gpu-a"
        ]
    assert actions[::-1] == [
        "node.add",
        "node.drain",
        "node.disable",
        "node.undrain",
        "node.enable",
        "node.remove",
    ]


def test_nodes_register_and_heartbeat_with_the_node_token(api: Api) -> None:
    node = {"node_id": "dyn-1", "base_url": "http://10.0.0.9:8188"}
    with api.http() as anonymous:
        assert anonymous.post("/api/v2/nodes/register", json=node).status_code == 401
    with api.http("wrong-token") as wrong:
        assert wrong.post("/api/v2/nodes/register", json=node).status_code == 401
    with api.http(NODE_TOKEN) as http:
        registered = http.post("/api/v2/nodes/register", json=node)
        assert registered.status_code == 200
        assert registered.json()["source"] == "dynamic" and registered.json()["last_seen_at"]
        beat = http.post("/api/v2/nodes/dyn-1/heartbeat", json={"queue_depth": 3, "vram_free": 1024})
        assert beat.json()["queue_depth"] == 3 and beat.json()["vram_free"] == 1024
        assert http.post("/api/v2/nodes/ghost/heartbeat", json={}).status_code == 404
    with api.http(api.admin_token()) as http:
        assert "dyn-1" in {n["node_id"] for n in http.get("/api/v2/admin/nodes").json()}


def test_strategy_per_group(api: Api) -> None:
    with api.http(api.admin_token()) as http:
        assert http.get("/api/v2/admin/strategy/default").json() == {
            "group": "default",
            "strategy": "least_loaded",
            "source": "config",
        }
        assert http.put("/api/v2/admin/strategy/default", json={"strategy": "round_robin"}).status_code == 200
        assert http.get("/api/v2/admin/strategy/default").json()["strategy"] == "round_robin"
        assert http.put("/api/v2/admin/strategy/default", json={"strategy": "vibes"}).status_code == 422


def test_all_jobs_detail_cancel_and_retry(api: Api) -> None:
    client_a, _ = api.new_client()
    client_b, _ = api.new_client()
    job_a, job_b = job_for(client_a), job_for(client_b)
    with api.http(api.admin_token()) as http:
        everything = http.get("/api/v2/admin/tasks", params={"limit": 500}).json()
        assert {job_a, job_b} <= {t["task_id"] for t in everything["items"]}
        only_a = http.get("/api/v2/admin/tasks", params={"client_id": client_a}).json()
        assert [t["task_id"] for t in only_a["items"]] == [job_a]
        detail = http.get(f"/api/v2/admin/tasks/{job_a}").json()
        assert detail["client_id"] == client_a and detail["attempt_list"] == []
        assert detail["client_name"].startswith("c-")
        assert http.post(f"/api/v2/admin/tasks/{job_b}/cancel").json()["status"] == "cancelled"
        retried = http.post(f"/api/v2/admin/tasks/{job_a}/retry")
        assert retried.status_code == 503  # a new job was written, Prefect (down here) refused the run
        retries = http.get("/api/v2/admin/tasks", params={"client_id": client_a}).json()
        assert retries["total"] == 2
        assert http.get("/api/v2/admin/tasks/nope").status_code == 404


def test_clients_create_patch_and_list(api: Api) -> None:
    with api.http(api.admin_token()) as http:
        created = http.post("/api/v2/admin/clients", json={"client_name": "made-by-admin", "daily_quota": 1})
        assert created.status_code == 201
        client_id, secret = created.json()["client_id"], created.json()["client_secret"]
        listed = {c["client_id"]: c for c in http.get("/api/v2/admin/clients").json()["items"]}
        assert listed[client_id]["daily_quota"] == 1
        patched = http.patch(f"/api/v2/admin/clients/{client_id}", json={"daily_quota": 0})
        assert patched.json()["daily_quota"] == 0
    token = api.token(client_id, secret)
    with api.http(token) as http:
        over = http.post("/api/v2/tasks/text-to-image", json={"prompt": "x"})
    assert over.status_code == 429 and over.json()["error"] == "quota_exceeded"


def test_admin_users(api: Api) -> None:
    with api.http(api.admin_token()) as http:
        created = http.post("/api/v2/admin/users", json={"username": "ops", "password": "ops-password-1"})
        assert created.status_code == 201 and created.json()["role"] == "operator"
        assert (
            http.post(
                "/api/v2/admin/users", json={"username": "ops", "password": "ops-password-1"}
            ).status_code
            == 409
        )
        assert "ops" in {u["username"] for u in http.get("/api/v2/admin/users").json()}
    with api.http() as http:
        login = http.post("/admin/auth/login", json={"username": "ops", "password": "ops-password-1"})
    assert login.status_code == 200 and login.json()["role"] == "operator"


def test_reports_overview_and_database_status(api: Api) -> None:
    client_id, _ = api.new_client()
    job_for(client_id)
    with api.http(api.admin_token()) as http:
        overview = http.get("/api/v2/admin/overview").json()
        assert overview["jobs_by_status"]["pending"] >= 1 and overview["clients"] >= 1
        assert isinstance(overview["throughput"], list)
        assert isinstance(http.get("/api/v2/admin/performance/nodes").json(), list)
        assert isinstance(http.get("/api/v2/admin/performance/tasks").json(), list)
        status = http.get("/api/v2/admin/database/status").json()
    assert {row["database"] for row in status} == {"client", "admin", "shared"}
    assert all(row["ok"] for row in status)


def test_readiness_reports_prefect_down(api: Api) -> None:
    with api.http() as http:
        response = http.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["databases"] == {"client": "ok", "admin": "ok", "shared": "ok"}
    assert body["prefect"]["ok"] is False


def test_job_list_names_each_jobs_client(api: Api) -> None:
    named, _ = api.register("render-farm-client")
    other, _ = api.register("second-client")
    jobs = {job_for(named): named, job_for(other): other}
    with api.http(api.admin_token()) as http:
        page = http.get("/api/v2/admin/tasks", params={"limit": 500}).json()
        detail = http.get(f"/api/v2/admin/tasks/{next(iter(jobs))}").json()
    rows = {t["task_id"]: t for t in page["items"] if t["task_id"] in jobs}
    assert {(r["client_id"], r["client_name"]) for r in rows.values()} == {
        (named, "render-farm-client"), (other, "second-client")
    }
    assert detail["client_name"] == "render-farm-client"


def _login(api: Api, username: str, password: str) -> httpx.Response:
    with api.http() as http:
        return http.post("/admin/auth/login", json={"username": username, "password": password})


def _user_ids(http: httpx.Client) -> dict[str, int]:
    return {u["username"]: u["id"] for u in http.get("/api/v2/admin/users").json()}


def test_disable_enable_and_role_change_keep_one_admin(api: Api) -> None:
    with api.http(api.admin_token()) as http:
        assert http.post("/api/v2/admin/users", json={"username": "night-shift", "password": "night-pass-1"}).is_success
        ids = _user_ids(http)
        root, night = ids["admin"], ids["night-shift"]
        # The seed admin is the only admin: neither disabling nor demoting it may leave nobody in charge.
        for refused in (http.post(f"/api/v2/admin/users/{root}/disable"),
                        http.patch(f"/api/v2/admin/users/{root}", json={"role": "viewer"})):
            assert refused.status_code == 409
            assert refused.json()["error"] == "conflict" and "last active admin" in refused.json()["detail"]
        assert http.post("/api/v2/admin/users/99999/disable").status_code == 404
        assert http.patch(f"/api/v2/admin/users/{night}", json={"role": "boss"}).status_code == 422

    operator = _login(api, "night-shift", "night-pass-1").json()["access_token"]
    with api.http(operator) as http:
        assert http.post(f"/api/v2/admin/users/{root}/disable").status_code == 403
        assert http.patch(f"/api/v2/admin/users/{night}", json={"role": "admin"}).status_code == 403

    with api.http(api.admin_token()) as http:
        disabled = http.post(f"/api/v2/admin/users/{night}/disable")
        assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    with api.http(operator) as http:
        assert http.get("/api/v2/admin/users").status_code == 401  # its token died with the account
    assert _login(api, "night-shift", "night-pass-1").status_code == 401

    with api.http(api.admin_token()) as http:
        assert http.post(f"/api/v2/admin/users/{night}/enable").json()["is_active"] is True
        assert http.patch(f"/api/v2/admin/users/{night}", json={"role": "admin"}).json()["role"] == "admin"
        # With a second admin the seed admin could step down; the second one, disabled, leaves it last again.
        assert http.post(f"/api/v2/admin/users/{night}/disable").status_code == 200
        assert http.post(f"/api/v2/admin/users/{root}/disable").status_code == 409
        assert http.post(f"/api/v2/admin/users/{night}/enable").status_code == 200
        assert http.patch(f"/api/v2/admin/users/{night}", json={"role": "viewer"}).json()["role"] == "viewer"
        actions = [(r["action"], r["detail"]) for r in http.get("/api/v2/admin/audit").json()
                   if r["target"] == "night-shift" and r["action"] != "admin.login"]
    assert _login(api, "admin", ADMIN_PASSWORD).status_code == 200
    assert actions[::-1] == [
        ("admin_user.create", {"role": "operator"}),
        ("admin_user.disable", {}),
        ("admin_user.enable", {}),
        ("admin_user.role", {"from": "operator", "to": "admin"}),
        ("admin_user.disable", {}),
        ("admin_user.enable", {}),
        ("admin_user.role", {"from": "admin", "to": "viewer"}),
    ]


@pytest.fixture
def workers_post_to_api(api: Api) -> Iterator[None]:
    """Out-of-API processes (here: the health monitor) publish events to this API over HTTP."""
    saved = os.environ.get("COMFYWS_API_URL")
    os.environ["COMFYWS_API_URL"] = api.url
    get_settings.cache_clear()
    yield
    if saved is None:
        os.environ.pop("COMFYWS_API_URL", None)
    else:
        os.environ["COMFYWS_API_URL"] = saved
    get_settings.cache_clear()


async def _next_node_event(feed: Any, node_id: str) -> dict[str, Any]:
    while True:
        message = json.loads(await feed.recv())
        if message.get("type") == "node" and message.get("node_id") == node_id:
            return dict(message)


async def test_health_monitor_announces_a_node_going_down_on_the_admin_feed(
    api: Api, workers_post_to_api: None
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every probe is refused
    with api.http(api.admin_token()) as http:
        assert http.post("/api/v2/admin/nodes", json={"node_id": "gone-node", "base_url": dead}).status_code == 201
    url = api.url.replace("http://", "ws://") + f"/api/v2/admin/ws?token={api.admin_token()}"
    publisher = HttpPublisher(api.url, get_settings().internal_token)
    try:
        async with connect(url, open_timeout=5) as feed:
            await asyncio.wait_for(_subscribed(feed, publisher), timeout=5)
            monitor = HealthMonitor(HealthConfig(timeout_seconds=0.5))
            # A loop of its own, as in `comfyws monitor`: the publisher is bound to the loop it was made in.
            await asyncio.to_thread(asyncio.run, monitor.probe_once())
            event = await asyncio.wait_for(_next_node_event(feed, "gone-node"), timeout=5)
    finally:
        await publisher.aclose()
        with api.http(api.admin_token()) as http:
            http.delete("/api/v2/admin/nodes/gone-node")
    assert event["status"] == "unhealthy"


async def _subscribed(feed: Any, publisher: HttpPublisher) -> None:
    """The feed sends nothing first: publish a marker until it comes back, so the subscription is in place."""
    while True:
        await publisher.publish({"type": "ping"})
        try:
            if json.loads(await asyncio.wait_for(feed.recv(), timeout=0.2)).get("type") == "ping":
                return
        except TimeoutError:
            continue
