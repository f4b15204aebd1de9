"""Issue 11 item 3, in the browser: the admin dashboard keeps a session of short-lived access tokens alive with its
refresh token, and returns to sign-in once the account is disabled (Debian's Chromium through Playwright)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from frontend.server import VUE_DIST
from tests.api.conftest import ADMIN_PASSWORD, Api, free_port, poll
from tests.api.security_live import live_fixture  # noqa: F401 - fixture

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture
def short_admin_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    # 70 s: the dashboard renews a minute before the end, so about ten seconds after signing in.
    monkeypatch.setenv("COMFYWS_API_ADMIN_TOKEN_TTL_SECONDS", "70")


@pytest.fixture
def dashboard(short_admin_tokens: None, live: Api) -> Iterator[str]:
    if not Path(CHROMIUM).exists() or not (VUE_DIST / "vue.global.prod.js").exists():
        pytest.skip("needs /usr/bin/chromium and frontend/admin's npm install")
    import threading

    import uvicorn

    from frontend.server import FrontendKind, app_for

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app_for(FrontendKind.ADMIN, api_url=live.url), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name=f"admin-ui-{port}", daemon=True)
    thread.start()
    poll(lambda: server.started, timeout=20, what="the admin front end")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_dashboard_renews_its_token_and_leaves_when_the_account_is_disabled(dashboard: str, live: Api) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{dashboard}/#/clients")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        first = page.evaluate("sessionStorage.getItem('comfyws.admin.token')")

        def renewed() -> bool:
            page.goto(f"{dashboard}/#/nodes" if "clients" in page.url else f"{dashboard}/#/clients")
            time.sleep(0.5)  # let the view's request go out; the poll's deadline bounds the whole wait
            return page.evaluate("sessionStorage.getItem('comfyws.admin.token')") != first

        poll(renewed, timeout=40, what="the dashboard to renew its access token")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        with live.http(live.admin_token()) as http:
            me = next(u for u in http.get("/api/v2/admin/users").json() if u["username"] == "admin")
            http.post("/api/v2/admin/users", json={"username": "second", "password": "second-admin-pw", "role": "admin"})
        with live.http(_login(live, "second", "second-admin-pw")) as http:
            assert http.post(f"/api/v2/admin/users/{me['id']}/disable").status_code == 200
        page.goto(f"{dashboard}/#/nodes")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20_000)
        browser.close()


def _login(api: Api, username: str, password: str) -> str:
    with api.http() as http:
        return str(http.post("/admin/auth/login", json={"username": username, "password": password}).json()["access_token"])
