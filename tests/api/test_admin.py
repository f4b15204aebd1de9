"""Admin routes: nodes and flags, node self-registration, strategies, jobs, clients, users, reports, audit."""

from __future__ import annotations

from tests.api.conftest import NODE_TOKEN, Api
from tests.api.factories import job_for


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
