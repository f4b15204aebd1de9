"""The Vue admin dashboard in Debian's Chromium against the whole stack: sign-in, overview counts, draining a node
steers new jobs away from it, node health arriving live from the monitor, strategies, jobs (filter, client names,
detail with its Prefect flow-run link, cancel), clients (create, rotate), admin users (disable, enable, role),
migrations, the overview charts drawn from real data, and user text rendered as text. Each page is saved at desktop
and phone width under tests/artifacts/screenshots. /config.js's Prefect UI address is checked without a browser."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from frontend.server import VUE_DIST, FrontendKind, app_for, get_frontend_settings
from tests.fixtures.prefect_server import PROJECT_ROOT, free_port, wait_until
from tests.fixtures.stack import stack_environment
from tests.frontend.conftest import StaticServer, screenshot

# The stack is listed before `page` in every test: it must start before Playwright's loop runs in this thread.
pytestmark = pytest.mark.timeout(180)

XSS_NAME = '<img src=x onerror="window.__xss=1">'
PREFECT_ENV = ("COMFYWS_FRONTEND_PREFECT_UI", "COMFYWS_API_PREFECT_API_URL", "PREFECT_API_URL")


def _serve_admin(api_url: str) -> StaticServer:
    import threading

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app_for(FrontendKind.ADMIN, api_url=api_url), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"admin-ui-{port}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20, what="admin front-end start")
    return StaticServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


@pytest.fixture(scope="module")
def admin_ui(stack: Any) -> Iterator[StaticServer]:
    if not (VUE_DIST / "vue.global.prod.js").exists():
        pytest.fail("Vue is not installed: run `npm ci` in frontend/admin")
    get_frontend_settings.cache_clear()  # /config.js reads PREFECT_API_URL, set by the stack's Prefect server
    server = _serve_admin(stack.api_url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client_token(stack: Any) -> str:
    return str(stack.new_client_token())


@pytest.fixture(scope="module")
def second_node(stack: Any) -> Iterator[Any]:
    """A second simulated node beside the stack's sim-1, removed again so later tests see the stack as it was."""
    node = stack.add_simnode("sim-admin-ui", step_delay=0.01)
    yield node
    _set_flag(stack, node.node_id, "undrain")
    _set_flag(stack, "sim-1", "undrain")
    stack.remove_simnode(node)


@pytest.fixture
def page(page: Page) -> Page:
    """The browser page with Vue's development build, so a template mistake surfaces as a `[Vue warn]`."""
    development = (VUE_DIST / "vue.global.js").read_bytes()
    page.route("**/vendor/vue/vue.global.prod.js",
               lambda route: route.fulfill(body=development, content_type="text/javascript"))
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if "[Vue warn]" in m.text else None)
    page.vue_warnings = warnings  # type: ignore[attr-defined]
    return page


def _admin(stack: Any) -> httpx.Client:
    return stack.http(stack.admin_token())  # type: ignore[no-any-return]


def _set_flag(stack: Any, node_id: str, action: str) -> None:
    with _admin(stack) as http:
        http.post(f"/api/v2/admin/nodes/{node_id}/{action}")


def _sign_in(page: Page, ui: StaticServer, stack: Any, *, path: str = "") -> None:
    page.goto(f"{ui.url}/{path}")
    user, password = stack.admin_credentials
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _goto(page: Page, ui: StaticServer, route: str) -> None:
    page.goto(f"{ui.url}/#/{route}")


def _no_script_errors(page: Page) -> None:
    assert page.script_errors.errors == []  # type: ignore[attr-defined]
    assert page.vue_warnings == []  # type: ignore[attr-defined]


def _small_job(stack: Any, token: str, **extra: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 2, **extra}
    return stack.submit(token, "text-to-image", body)  # type: ignore[no-any-return]


def test_wrong_password_is_refused_with_a_message_then_sign_in_shows_the_overview(
    stack: Any, admin_ui: StaticServer, client_token: str, page: Page
) -> None:
    done = stack.wait_final(client_token, _small_job(stack, client_token)["task_id"])
    assert done["status"] == "completed", done
    page.goto(admin_ui.url)
    page.get_by_label("Username").fill(stack.admin_credentials[0])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    screenshot(page, "admin-login")

    page.get_by_label("Password").fill(stack.admin_credentials[1])
    page.get_by_role("button", name="Sign in").click()
    with _admin(stack) as http:
        counts = http.get("/api/v2/admin/overview").json()["jobs_by_status"]
    assert counts["completed"] >= 1
    completed_tile = page.locator("[data-testid=job-counts] [data-state=completed] .tile-value")
    # Other tests of the session may finish jobs meanwhile: at least what the API said a moment ago.
    wait_until(lambda: int(completed_tile.inner_text()) >= counts["completed"], timeout=10, interval=0.1,
               what="the completed count on the overview")
    expect(page.locator("[data-count=nodes-total] .tile-value")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("figure.chart")).to_have_count(2)
    screenshot(page, "admin-overview")
    _charts_draw_the_last_hour(page)

    # A job finishing now shows up without a reload: the admin socket (or polling) refreshes the counts.
    expect(page.get_by_test_id("live-mode")).to_have_text("live")
    shown = int(completed_tile.inner_text())
    later = stack.wait_final(client_token, _small_job(stack, client_token)["task_id"])
    assert later["status"] == "completed", later
    wait_until(lambda: int(completed_tile.inner_text()) > shown, timeout=20, interval=0.1,
               what="the overview to count the new job without a reload")
    _no_script_errors(page)


def _series(page: Page, chart: str, name: str) -> tuple[int, list[float]]:
    """(points on the line, values of its dots) of one series of the chart titled `chart`."""
    group = page.locator(f"figure.chart[aria-label='{chart}'] g[data-series='{name}']")
    points = (group.locator("polyline").get_attribute("points") or "").split()
    return len(points), [float(v) for v in group.locator("circle").evaluate_all("cs => cs.map(c => c.dataset.value)")]


def _charts_draw_the_last_hour(page: Page) -> None:
    """The hour in 12 five-minute points; the jobs finished above show as completed throughput, and the failure
    rate has a dot wherever jobs finished (a lone busy 5 minutes has no line, only its dot)."""
    count, completed = _series(page, "Throughput (last hour)", "completed / 5 min")
    assert count == 12 and len(completed) == 12 and sum(completed) >= 1, completed
    count, failed = _series(page, "Throughput (last hour)", "failed / 5 min")
    assert count == 12 and all(v >= 0 for v in failed)
    _, rates = _series(page, "Failure rate (last hour)", "failure rate")
    assert rates and all(0 <= rate <= 100 for rate in rates), rates
    finished = [c + f for c, f in zip(completed, failed, strict=True) if c + f]
    assert len(rates) == len(finished)
    # A 0 % failure rate is a finding, not an empty window.
    expect(page.locator("figure.chart figcaption", has_text="nothing finished")).to_have_count(0)


def test_a_drained_node_gets_no_new_jobs_and_strategy_switches(
    stack: Any, admin_ui: StaticServer, client_token: str, second_node: Any, page: Page
) -> None:
    _sign_in(page, admin_ui, stack, path="#/nodes")
    # sim-1 wins every tie of the balancer, so jobs landing elsewhere show the drain at work.
    drained = page.locator("tr[data-node=sim-1]")
    expect(page.locator(f"tr[data-node={second_node.node_id}]")).to_be_visible()
    try:
        drained.get_by_role("button", name="Drain").click()
        expect(drained.locator("[data-state=draining]")).to_be_visible()
        jobs = [_small_job(stack, client_token) for _ in range(3)]
        finished = [stack.wait_final(client_token, job["task_id"]) for job in jobs]
        assert {job["status"] for job in finished} == {"completed"}, finished
        assert {job["node_id"] for job in finished} == {second_node.node_id}
        drained.get_by_role("button", name="Undrain").click()
        expect(drained.locator("[data-state=draining]")).to_have_count(0)
    finally:
        _set_flag(stack, "sim-1", "undrain")

    picker = page.locator("[data-testid=strategies] [data-group=default] select")
    expect(picker).to_be_visible()
    before = picker.input_value()
    after = "round_robin" if before != "round_robin" else "least_loaded"
    try:
        picker.select_option(after)
        expect(page.get_by_text(f"Group default now uses {after}.")).to_be_visible()
        with _admin(stack) as http:
            assert http.get("/api/v2/admin/strategy/default").json() == {
                "group": "default", "strategy": after, "source": "admin"
            }
        page.locator(f"tr[data-node={second_node.node_id}]").get_by_role("button", name="History").click()
        expect(page.locator(f"[data-history={second_node.node_id}]")).to_be_visible()
        screenshot(page, "admin-nodes")
    finally:
        with _admin(stack) as http:
            http.put("/api/v2/admin/strategy/default", json={"strategy": before})
    _no_script_errors(page)


def test_a_node_added_in_the_form_can_be_removed(stack: Any, admin_ui: StaticServer, page: Page) -> None:
    _sign_in(page, admin_ui, stack, path="#/nodes")
    form = page.locator("[data-testid=add-node]")
    form.get_by_label("Node id").fill("ui-added-node")
    form.get_by_label("Base URL").fill("http://127.0.0.1:9")
    form.get_by_label("Group").fill("ui-test")
    form.get_by_role("button", name="Add node").click()
    row = page.locator("tr[data-node=ui-added-node]")
    expect(row).to_contain_text("ui-test")
    row.get_by_role("button", name="Remove").click()
    row.get_by_role("button", name="Confirm remove").click()
    expect(row).to_have_count(0)
    with _admin(stack) as http:
        assert "ui-added-node" not in [n["node_id"] for n in http.get("/api/v2/admin/nodes").json()]
    _no_script_errors(page)


def test_jobs_filter_detail_and_cancel(
    stack: Any, admin_ui: StaticServer, client_token: str, second_node: Any, page: Page
) -> None:
    done = stack.wait_final(client_token, _small_job(stack, client_token)["task_id"])
    # A slow node alone in service keeps the next job running long enough to cancel it from the page.
    _set_flag(stack, "sim-1", "drain")
    second_node.control(step_delay=0.5)
    try:
        slow = _small_job(stack, client_token, steps=60, prompt=f"slow {XSS_NAME}")
        wait_until(lambda: stack.task(client_token, slow["task_id"])["status"] == "running", timeout=30,
                   interval=0.1, what="the slow job to start")
        _sign_in(page, admin_ui, stack, path="#/jobs")
        page.get_by_label("Status").select_option("running")
        running = page.locator(f"tr[data-task='{slow['task_id']}']")
        expect(running).to_be_visible()
        expect(page.locator(f"tr[data-task='{done['task_id']}']")).to_have_count(0)
        with _admin(stack) as http:
            client_name = http.get(f"/api/v2/admin/tasks/{slow['task_id']}").json()["client_name"]
        assert client_name
        expect(running.locator("td[data-label=Client]")).to_have_text(client_name)
        expect(page.locator("[data-testid=jobs-table] tbody tr [data-state]")).to_have_text(
            re.compile("running")
        )
        screenshot(page, "admin-jobs")

        running.click()
        detail = page.locator("[data-testid=job-detail]")
        expect(detail.locator("[data-testid=attempts-table] tr[data-attempt]")).to_contain_text(second_node.node_id)
        expect(detail.locator("[data-testid=job-params]")).to_contain_text(f"slow {XSS_NAME}")
        # 64-bit seeds are beyond JavaScript's exact integers: the page must show the stored one, not a rounding.
        seed = str(stack.task(client_token, slow["task_id"])["seed"])
        expect(detail.locator("[data-testid=job-seed]")).to_have_text(seed)
        # /config.js names the stack's Prefect server (its API URL minus /api) as seen from the page.
        prefect_ui = stack.prefect_url.removesuffix("/api")
        link = detail.locator("[data-testid=flow-run-link]")
        expect(link).to_have_attribute("href", re.compile(rf"^{re.escape(prefect_ui)}/runs/flow-run/[0-9a-f-]+$"))
        flow_run = httpx.get(f"{stack.prefect_url}/flow_runs/{link.get_attribute('href').rsplit('/', 1)[1]}")
        assert flow_run.status_code == 200, flow_run.text  # the link names a real flow run
        screenshot(page, "admin-job-detail")
        detail.get_by_role("button", name="Cancel job").click()
        expect(detail.locator("[data-testid=job-status]")).to_have_text("cancelled", timeout=30_000)
    finally:
        second_node.control(step_delay=0.01)
        _set_flag(stack, "sim-1", "undrain")
    assert stack.task(client_token, slow["task_id"])["status"] == "cancelled"
    _no_script_errors(page)


def test_create_client_rotate_secret_and_names_render_as_text(
    stack: Any, admin_ui: StaticServer, page: Page
) -> None:
    _sign_in(page, admin_ui, stack, path="#/clients")
    form = page.locator("[data-testid=create-client]")
    form.get_by_label("Name").fill(XSS_NAME)
    form.get_by_label("Daily quota").fill("25")
    form.get_by_role("button", name="Create client").click()
    box = page.locator("[data-testid=secret-box]")
    first_secret = box.locator("[data-testid=secret-value]").inner_text()
    client_id = box.locator("[data-testid=secret-client-id]").inner_text()
    assert stack.client_token(client_id, first_secret)

    row = page.locator(f"tr[data-client='{client_id}']")
    expect(row.locator(".client-name")).to_have_text(XSS_NAME)
    assert row.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None
    box.get_by_role("button", name="I stored it").click()

    row.get_by_role("button", name="Rotate secret").click()
    second_secret = box.locator("[data-testid=secret-value]")
    expect(second_secret).not_to_have_text(first_secret)
    assert stack.client_token(client_id, second_secret.inner_text())
    with stack.http() as http:
        old = http.post("/api/v2/auth/token", json={"client_id": client_id, "client_secret": first_secret})
    assert old.status_code == 401
    screenshot(page, "admin-clients")

    row.get_by_role("button", name="Disable").click()
    expect(row.locator("[data-state=disabled]")).to_be_visible()
    row.get_by_role("button", name="Enable").click()
    expect(row.locator("[data-state=active]")).to_be_visible()
    assert page.evaluate("window.__xss") is None
    _no_script_errors(page)


def test_without_a_websocket_the_dashboard_polls(
    stack: Any, admin_ui: StaticServer, client_token: str, page: Page
) -> None:
    page.add_init_script("window.WebSocket = undefined;")
    _sign_in(page, admin_ui, stack, path="#/jobs")
    expect(page.get_by_test_id("live-mode")).to_have_text("polling")
    job = _small_job(stack, client_token)
    expect(page.locator(f"tr[data-task='{job['task_id']}']")).to_be_visible()
    stack.wait_final(client_token, job["task_id"])
    expect(page.locator(f"tr[data-task='{job['task_id']}'] [data-state]")).to_have_text("completed")
    _no_script_errors(page)


def test_database_page_shows_migration_status_and_users_page_lists_admin(
    stack: Any, admin_ui: StaticServer, page: Page
) -> None:
    _sign_in(page, admin_ui, stack, path="#/database")
    for name in ("client", "admin", "shared"):
        expect(page.locator(f"tr[data-database={name}]")).to_contain_text("up to date")
    screenshot(page, "admin-database")
    _goto(page, admin_ui, "users")
    expect(page.locator(f"tr[data-user='{stack.admin_credentials[0]}']")).to_be_visible()
    screenshot(page, "admin-users")
    _no_script_errors(page)


def test_users_page_disables_enables_and_changes_roles(stack: Any, admin_ui: StaticServer, page: Page) -> None:
    with _admin(stack) as http:
        created = http.post("/api/v2/admin/users", json={"username": "ui-night-shift", "password": "night-pass-1"})
    assert created.status_code == 201, created.text
    _sign_in(page, admin_ui, stack, path="#/users")
    row = page.locator("tr[data-user='ui-night-shift']")
    me = page.locator(f"tr[data-user='{stack.admin_credentials[0]}']")

    me.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("alert")).to_contain_text("last active admin")
    expect(me.locator("[data-state=active]")).to_be_visible()

    row.get_by_role("button", name="Disable").click()
    expect(row.locator("[data-state=disabled]")).to_be_visible()
    with stack.http() as http:
        refused = http.post("/admin/auth/login", json={"username": "ui-night-shift", "password": "night-pass-1"})
    assert refused.status_code == 401
    row.get_by_role("button", name="Enable").click()
    expect(row.locator("[data-state=active]")).to_be_visible()

    row.get_by_label("Role of ui-night-shift").select_option("viewer")
    expect(page.get_by_text("ui-night-shift is now viewer.")).to_be_visible()
    # The last admin keeps its role: the refusal is shown and the select goes back to "admin".
    me.get_by_label(f"Role of {stack.admin_credentials[0]}").select_option("operator")
    expect(page.get_by_role("alert")).to_contain_text("last active admin")
    expect(me.get_by_label(f"Role of {stack.admin_credentials[0]}")).to_have_value("admin")
    screenshot(page, "admin-users-actions")
    with _admin(stack) as http:
        users = {u["username"]: u for u in http.get("/api/v2/admin/users").json()}
    assert users["ui-night-shift"]["role"] == "viewer" and users["ui-night-shift"]["is_active"]
    assert users[stack.admin_credentials[0]]["role"] == "admin"
    _no_script_errors(page)


def test_node_health_from_the_monitor_shows_without_a_reload(
    stack: Any, admin_ui: StaticServer, page: Page
) -> None:
    dead = {"node_id": "ui-gone-node", "base_url": f"http://127.0.0.1:{free_port()}", "group": "ui-health"}
    with _admin(stack) as http:
        assert http.post("/api/v2/admin/nodes", json=dead).status_code == 201
    try:
        _sign_in(page, admin_ui, stack, path="#/nodes")
        row = page.locator("tr[data-node=ui-gone-node]")
        expect(row.locator("[data-state=unknown]")).to_be_visible()
        expect(page.get_by_test_id("live-mode")).to_have_text("live")
        # One round of the real monitor, as `comfyws run` starts it; it posts node events to the stack's API.
        with stack_environment(stack):  # the stack's databases, whatever other test packages set since
            monitor = subprocess.run(
                [sys.executable, "-m", "comfyws", "monitor", "--once", "--no-sync"],
                cwd=PROJECT_ROOT, env={**os.environ, "COMFYWS_API_URL": stack.api_url}, capture_output=True,
                text=True, timeout=60,
            )
        assert monitor.returncode == 0, monitor.stdout + monitor.stderr
        with _admin(stack) as http:
            stored = http.get("/api/v2/admin/nodes/ui-gone-node/health").json()["node"]
        assert stored["status"] == "unhealthy", (stored, monitor.stdout, monitor.stderr)
        # Well inside the dashboard's 15 s safety refresh: the node event itself moved the badge.
        expect(row.locator("[data-state=unhealthy]")).to_be_visible(timeout=5_000)
        expect(page.locator("tr[data-node=sim-1] [data-state=healthy]")).to_be_visible(timeout=5_000)
        screenshot(page, "admin-nodes-health")
    finally:
        with _admin(stack) as http:
            http.delete("/api/v2/admin/nodes/ui-gone-node")
    _no_script_errors(page)


async def _get_config_js(host: str) -> str:
    transport = httpx.ASGITransport(app=app_for(FrontendKind.ADMIN))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        return (await http.get("/config.js")).text


def _config_js(host: str) -> str:
    # A loop in a thread of its own: Playwright's sync API may keep a loop marked running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _get_config_js(host)).result(timeout=30)


@pytest.fixture
def prefect_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in PREFECT_ENV:
        monkeypatch.delenv(name, raising=False)
    get_frontend_settings.cache_clear()
    yield monkeypatch
    get_frontend_settings.cache_clear()


def test_config_names_the_prefect_ui_on_the_pages_own_host(prefect_env: pytest.MonkeyPatch) -> None:
    assert "COMFYWS_PREFECT_UI" not in _config_js("192.168.1.20:8001")  # nothing known, nothing said
    prefect_env.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    get_frontend_settings.cache_clear()
    # A Prefect server on the dashboard's machine, reached over the LAN: the page's host, Prefect's port.
    assert 'window.COMFYWS_PREFECT_UI = "http://192.168.1.20:4200";' in _config_js("192.168.1.20:8001")
    prefect_env.setenv("COMFYWS_API_PREFECT_API_URL", "https://prefect.example.test/api/")
    get_frontend_settings.cache_clear()
    assert 'window.COMFYWS_PREFECT_UI = "https://prefect.example.test";' in _config_js("192.168.1.20:8001")
    prefect_env.setenv("COMFYWS_FRONTEND_PREFECT_UI", "https://flows.example.test/")
    get_frontend_settings.cache_clear()
    assert 'window.COMFYWS_PREFECT_UI = "https://flows.example.test";' in _config_js("192.168.1.20:8001")
