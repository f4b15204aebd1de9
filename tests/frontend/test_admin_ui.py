"""The Vue admin dashboard in Debian's Chromium against the whole stack: sign-in, overview counts, draining a node
steers new jobs away from it, strategies, jobs (filter, detail, cancel), clients (create, rotate), migrations,
and user text rendered as text. Each page is saved at desktop and phone width under tests/artifacts/screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from frontend.server import VUE_DIST, FrontendKind, app_for
from tests.fixtures.prefect_server import wait_until
from tests.frontend.conftest import StaticServer, screenshot

# The stack is listed before `page` in every test: it must start before Playwright's loop runs in this thread.
pytestmark = pytest.mark.timeout(180)

XSS_NAME = '<img src=x onerror="window.__xss=1">'
PREFECT_UI = "http://prefect.example.test"


def _serve_admin(api_url: str) -> StaticServer:
    import threading

    import uvicorn

    from tests.fixtures.prefect_server import free_port

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

    # A job finishing now shows up without a reload: the admin socket (or polling) refreshes the counts.
    expect(page.get_by_test_id("live-mode")).to_have_text("live")
    shown = int(completed_tile.inner_text())
    later = stack.wait_final(client_token, _small_job(stack, client_token)["task_id"])
    assert later["status"] == "completed", later
    wait_until(lambda: int(completed_tile.inner_text()) > shown, timeout=20, interval=0.1,
               what="the overview to count the new job without a reload")
    _no_script_errors(page)


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
        page.add_init_script(f"window.COMFYWS_PREFECT_UI = {PREFECT_UI!r};")
        _sign_in(page, admin_ui, stack, path="#/jobs")
        page.get_by_label("Status").select_option("running")
        running = page.locator(f"tr[data-task='{slow['task_id']}']")
        expect(running).to_be_visible()
        expect(page.locator(f"tr[data-task='{done['task_id']}']")).to_have_count(0)
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
        link = detail.locator("[data-testid=flow-run-link]")
        expect(link).to_have_attribute("href", re.compile(rf"^{re.escape(PREFECT_UI)}/runs/flow-run/[0-9a-f-]+$"))
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
