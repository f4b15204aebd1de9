"""frontend.server: the static files, /config.js naming the API from the page's own host, the env override,
and Vue served under /vendor/vue/ for the admin dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comfyws.settings import get_settings
from frontend import CLIENT_DIR
from frontend.server import create_app, get_frontend_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("COMFYWS_FRONTEND_API_URL", raising=False)
    monkeypatch.delenv("COMFYWS_FRONTEND_API_PORT", raising=False)
    monkeypatch.delenv("COMFYWS_API_URL", raising=False)  # a stack started earlier in the session sets it
    get_frontend_settings.cache_clear()
    get_settings.cache_clear()
    yield monkeypatch
    get_frontend_settings.cache_clear()
    get_settings.cache_clear()


async def _get(app, url: str, *, host: str = "192.168.1.20:8001") -> httpx.Response:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        return await client.get(url)


async def test_index_and_modules_are_served() -> None:
    app = create_app(CLIENT_DIR)
    index = await _get(app, "/")
    assert index.status_code == 200 and '<script src="config.js">' in index.text
    module = await _get(app, "/api.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]


async def test_config_points_at_the_api_on_the_pages_own_host() -> None:
    response = await _get(create_app(CLIENT_DIR), "/config.js")
    assert response.text == 'window.COMFYWS_API = "http://192.168.1.20:8000";\n'
    assert response.headers["cache-control"] == "no-store"


async def test_config_override_from_the_environment(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("COMFYWS_FRONTEND_API_URL", "https://api.example.test/")
    response = await _get(create_app(CLIENT_DIR), "/config.js")
    assert response.text == 'window.COMFYWS_API = "https://api.example.test";\n'


async def test_a_forged_host_cannot_inject_script() -> None:
    response = await _get(create_app(CLIENT_DIR), "/config.js", host='evil";alert(1);"')
    assert 'alert(1);"' not in response.text.replace('\\"', "")


async def test_vendor_folder_is_served_when_present(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "vue.global.prod.js").write_text("var Vue = {};")
    app = create_app(CLIENT_DIR, vendor={"vue": dist, "missing": tmp_path / "nope"})
    assert (await _get(app, "/vendor/vue/vue.global.prod.js")).text == "var Vue = {};"
    assert (await _get(app, "/vendor/missing/x.js")).status_code == 404
