"""The HTML client in a real browser against the whole stack: sign-in, every generation type, live progress,
cancel, escaping of user text, and recovery from an expired session, a server error and a lost WebSocket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import restart_api
from tests.frontend.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.timeout(180)]

XSS_PROMPT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> a fox'
# Counts preview frames as the page shows them (they are replaced by the result once it arrives).
COUNT_PREVIEWS = """
window.__previews = 0;
new MutationObserver((records) => {
  for (const r of records) if (r.target.classList && r.target.classList.contains('job-preview')
      && String(r.target.getAttribute('src')).startsWith('data:image/')) window.__previews += 1;
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['src'] });
"""


@pytest.fixture(scope="module")
def catalog(stack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return dict(httpx.get(f"{stack.api_url}/api/v2/workflows", timeout=10).json()["task_types"])


@pytest.fixture
def start_image(tmp_path: Path) -> Path:
    path = tmp_path / "start.png"
    Image.new("RGB", (320, 256), (200, 90, 40)).save(path)
    return path


@pytest.fixture
def signed_in(page: Page, client_ui, stack) -> Iterator[tuple[Page, str, str]]:  # type: ignore[no-untyped-def]
    client_id, secret = stack.register_client()
    page.goto(client_ui.url)
    sign_in(page, client_id, secret)
    yield page, client_id, secret
    assert page.script_errors.errors == []  # type: ignore[attr-defined]


@pytest.fixture
def slow_node(stack) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    node = stack.simnodes[0]
    node.control(step_delay=0.2)
    yield node
    node.control(step_delay=0.01)


def sign_in(page: Page, client_id: str, secret: str) -> None:
    page.fill("#client-id", client_id)
    page.fill("#client-secret", secret)
    page.click("#signin-submit")
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#account-name")).to_have_text(client_id)
    expect(page.locator("#type-tabs [role=tab]").first).to_be_visible()


def small_values(workflow: dict[str, Any]) -> dict[str, str]:
    """The smallest sizes and step counts the workflow allows, so the simulated node answers quickly."""
    values: dict[str, str] = {}
    for param in workflow["parameters"]:
        if param["name"] in ("width", "height"):
            values[param["name"]] = str(max(64, int(param["minimum"] or 64)))
        elif param["name"] == "steps":
            values["steps"] = "4"
        elif param["name"] == "duration":
            values["duration"] = "0.5"
    return values


def submit_job(page: Page, task_type: str, catalog: dict[str, Any], *, prompt: str | None = None,
               image: Path | None = None, values: dict[str, str] | None = None) -> Locator:
    """Fill the form of `task_type` like a person would, submit it and return the new job's card."""
    page.click(f'#type-tabs [data-type="{task_type}"]')
    workflow = catalog[task_type]["workflows"][catalog[task_type]["default_workflow"]]
    for name, value in {**small_values(workflow), **(values or {})}.items():
        page.fill(f"#param-{name}", value)
    if prompt is not None and page.locator("#param-prompt").count():
        page.fill("#param-prompt", prompt)
    if image is not None:
        page.set_input_files(".image-input input[type=file]", str(image))
    if page.locator(".image-input").count():
        expect(page.locator(".image-input .upload-state")).to_contain_text("Uploaded")
        expect(page.locator(".image-input img.preview")).to_be_visible()
    cards = page.locator("#job-list li.job")
    before = cards.count()
    page.click("#submit-job")
    expect(cards).to_have_count(before + 1)
    return cards.first


def expect_completed(card: Locator) -> None:
    expect(card.locator(".job-status")).to_have_text("Completed", timeout=60_000)
    expect(card.locator("progress")).to_have_attribute("value", "100")
    expect(card.locator(".job-progress-text")).to_contain_text("100%")
    media = card.locator(".result-media").first
    expect(card.locator("figure.result.loaded")).to_have_count(1)
    assert media.evaluate("m => m.tagName === 'VIDEO' ? m.readyState > 0 || !!m.src : m.naturalWidth > 0")


def test_sign_in_rejects_wrong_credentials_and_registers(page: Page, client_ui, stack) -> None:  # type: ignore[no-untyped-def]
    page.goto(client_ui.url)
    expect(page.locator("#signin-view")).to_be_visible()
    screenshot(page, "sign-in")
    page.fill("#client-id", "nobody")
    page.fill("#client-secret", "wrong-secret")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text(re.compile("client ID or secret is wrong"))
    screenshot(page, "sign-in-wrong-credentials")

    page.click("#register-details summary")
    page.fill("#register-name", f"ui-{page.context.browser.version}-{id(page)}")  # type: ignore[union-attr]
    page.click("#register-form button[type=submit]")
    expect(page.locator('[data-testid="new-client-secret"]')).not_to_be_empty()
    screenshot(page, "register-secret-shown-once")
    page.click("#register-result button")
    page.click("#signin-submit")
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#signin-error")).to_be_hidden()
    assert page.script_errors.errors == []  # type: ignore[attr-defined]


def test_every_generation_type_runs_with_live_progress(
    signed_in: tuple[Page, str, str], catalog: dict[str, Any], start_image: Path
) -> None:
    page = signed_in[0]
    page.add_init_script(COUNT_PREVIEWS)
    page.reload()
    expect(page.locator("#app-view")).to_be_visible()
    tabs = page.locator("#type-tabs [role=tab]")
    expect(tabs).to_have_count(len(catalog))  # forms come from the catalog, one per task type
    screenshot(page, "create-form")
    for task_type, info in catalog.items():
        workflow = info["workflows"][info["default_workflow"]]
        takes_image = any(p["type"] == "image" for p in workflow["parameters"])
        card = submit_job(page, task_type, catalog, prompt=f"a lighthouse ({task_type})",
                          image=start_image if takes_image else None)
        expect_completed(card)
    assert page.evaluate("window.__previews") > 0
    gallery = page.locator("#gallery-grid figure.result")
    expect(gallery).to_have_count(len(catalog))
    expect(page.locator("#gallery-grid figure.result.loaded")).to_have_count(len(catalog))
    screenshot(page, "jobs-and-gallery")


def test_result_used_as_input_starts_image_to_video(
    signed_in: tuple[Page, str, str], catalog: dict[str, Any]
) -> None:
    page = signed_in[0]
    expect_completed(submit_job(page, "text_to_image", catalog, prompt="a red boat"))
    page.locator("#gallery-grid .use-input").first.click()
    expect(page.locator('#type-tabs [data-type="image_to_video"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator(".image-input .upload-state")).to_contain_text("Uploaded")
    assert page.locator("input[data-upload]").input_value()
    card = submit_job(page, "image_to_video", catalog)
    expect_completed(card)
    download = page.locator("#gallery-grid figure.result a[download]").first
    expect(download).to_have_attribute("href", re.compile("^blob:"))


def test_cancel_stops_a_running_job(signed_in: tuple[Page, str, str], catalog: dict[str, Any], slow_node) -> None:  # type: ignore[no-untyped-def]
    page = signed_in[0]
    card = submit_job(page, "text_to_image", catalog, prompt="a slow one", values={"steps": "60"})
    expect(card.locator(".job-status")).to_have_text("Running", timeout=30_000)
    expect(card.locator(".job-progress-text")).to_contain_text("step", timeout=30_000)
    screenshot(page, "job-running")
    card.locator(".job-cancel").click()
    expect(card.locator(".job-status")).to_have_text("Cancelled", timeout=30_000)
    expect(card.locator(".job-cancel")).to_be_hidden()


def test_user_text_is_shown_as_text_never_run(
    signed_in: tuple[Page, str, str], catalog: dict[str, Any]
) -> None:
    page = signed_in[0]
    card = submit_job(page, "text_to_image", catalog, prompt=XSS_PROMPT)
    expect(card.locator(".job-prompt")).to_have_text(XSS_PROMPT)
    expect_completed(card)
    expect(page.locator("#gallery-grid .result-prompt").first).to_have_text(XSS_PROMPT)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x], script:not([src])").count() == 0


def test_token_is_renewed_before_it_expires(page: Page, client_ui, stack) -> None:  # type: ignore[no-untyped-def]
    page.clock.install()
    page.goto(client_ui.url)
    sign_in(page, *stack.register_client())
    first = page.evaluate("sessionStorage.getItem('comfyws.client.session')")
    with page.expect_response("**/api/v2/auth/token") as renewal:
        page.clock.run_for("59:10")  # a minute before the hour a token lives
    assert renewal.value.status == 200
    # The page stores the new token once it has read the response: wait for that, don't race it.
    # (polled from Python: the page's own timers are faked by the clock)
    wait_until(lambda: page.evaluate("sessionStorage.getItem('comfyws.client.session')") != first,
               timeout=10, what="the renewed token to be stored")
    page.click("#gallery-refresh")
    expect(page.locator("#signin-view")).to_be_hidden()
    assert page.script_errors.errors == []  # type: ignore[attr-defined]


def test_expired_session_prompts_and_recovers(signed_in: tuple[Page, str, str], catalog: dict[str, Any], stack) -> None:  # type: ignore[no-untyped-def]
    page, client_id, _ = signed_in
    # Rotating the secret revokes every token of the client: the page's token and its stored secret stop working.
    with stack.http(stack.admin_token()) as http:
        response = http.post(f"/api/v2/admin/clients/{client_id}/rotate")
    assert response.status_code == 200, response.text
    page.click("#gallery-refresh")
    expect(page.locator("#signin-reason")).to_have_text(re.compile("session has expired"))
    expect(page.locator("#client-id")).to_have_value(client_id)
    screenshot(page, "session-expired")
    page.fill("#client-secret", response.json()["client_secret"])
    page.click("#signin-submit")
    expect(page.locator("#app-view")).to_be_visible()
    expect_completed(submit_job(page, "text_to_image", catalog, prompt="after re-auth"))


def test_server_error_shows_a_message_and_the_page_keeps_working(
    signed_in: tuple[Page, str, str], catalog: dict[str, Any]
) -> None:
    page = signed_in[0]
    # The API answering 500 once (what a crashed handler returns), then working again.
    page.route("**/api/v2/tasks/text-to-image", lambda route: route.fulfill(
        status=500, content_type="application/json", body='{"error":"internal_error","detail":"database gone"}'
    ), times=1)
    page.click('#type-tabs [data-type="text_to_image"]')
    page.fill("#param-prompt", "first try")
    page.click("#submit-job")
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice-text")).to_have_text(re.compile(r"service had a problem \(500: database gone\)"))
    expect(page.locator("#form-error")).to_contain_text("Could not start the job")
    screenshot(page, "server-error")
    page.click("#notice-close")
    expect_completed(submit_job(page, "text_to_image", catalog, prompt="second try"))


def test_lost_websocket_reconnects_and_catches_up(
    signed_in: tuple[Page, str, str], catalog: dict[str, Any], stack, slow_node  # type: ignore[no-untyped-def]
) -> None:
    page = signed_in[0]
    card = submit_job(page, "text_to_image", catalog, prompt="through an outage", values={"steps": "20"})
    expect(card.locator(".job-status")).to_have_text("Running", timeout=30_000)
    slow_node.control(step_delay=0.01)
    restart_api(stack)  # the API goes away and comes back on the same port; the job keeps running meanwhile
    expect(page.locator("#connection")).to_have_text(re.compile("Live updates (lost|reconnected)"))
    expect(page.locator("#connection")).to_have_text("Live updates reconnected.", timeout=30_000)
    screenshot(page, "websocket-reconnected")
    expect_completed(card)  # read back through GET: the events of the outage were never delivered
    expect_completed(submit_job(page, "text_to_image", catalog, prompt="after the outage"))
