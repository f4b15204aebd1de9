"""Browser fixtures: Debian's Chromium through Playwright (never a downloaded browser), the client page served
by frontend.server on a free port against the test stack's API, and screenshot helpers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from frontend import CLIENT_DIR
from frontend.server import create_app
from tests.fixtures.prefect_server import PROJECT_ROOT, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = PROJECT_ROOT / "tests" / "artifacts" / "screenshots"


@dataclass
class StaticServer:
    """A front end served by frontend.server in a thread of the test process."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(root: Path, *, api_url: str) -> StaticServer:
    port = free_port()
    config = uvicorn.Config(create_app(root, api_url=api_url), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"frontend-{port}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20, what="front-end server start")
    return StaticServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


@pytest.fixture(scope="module")
def playwright_instance(client_ui: StaticServer) -> Iterator[Playwright]:
    # Module scope, started after the stack: Playwright's sync API keeps an event loop marked running in this
    # thread while it lives, which would break asyncio.run() in the stack's set-up and in other test modules.
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def client_ui(stack) -> Iterator[StaticServer]:  # type: ignore[no-untyped-def]
    server = serve(CLIENT_DIR, api_url=stack.api_url)
    yield server
    server.stop()


@dataclass
class PageErrors:
    """Uncaught script errors of a page: any one fails the test that produced it."""

    errors: list[str] = field(default_factory=list)

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(str(error))

    def on_console(self, message: ConsoleMessage) -> None:
        # Refused requests and sockets are what several tests provoke on purpose; the page must handle them.
        expected = ("Failed to load resource", "WebSocket connection")
        if message.type == "error" and not any(text in message.text for text in expected):
            self.errors.append(message.text)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", errors.on_page_error)
    page.on("console", errors.on_console)
    page.script_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Save the page at desktop and phone width (tests/artifacts/screenshots/<name>-desktop|phone.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
