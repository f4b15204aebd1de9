"""A small ASGI app per front end: its static files plus a generated /config.js saying where the API is."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from comfyws.settings import get_settings
from frontend import ADMIN_DIR, CLIENT_DIR

# The admin page loads Vue from here; npm puts it under the admin folder's node_modules.
VUE_DIST = ADMIN_DIR / "node_modules" / "vue" / "dist"


class FrontendKind(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_FRONTEND_", extra="ignore")

    api_url: str | None = Field(
        None, description="The API's base URL the pages call; unset = same host as the page, port api_port"
    )
    api_port: int | None = Field(
        None, ge=1, le=65535,
        description="API port used when api_url is unset; default the port of COMFYWS_API_URL (8000)",
    )


@lru_cache
def get_frontend_settings() -> FrontendSettings:
    """Read once; tests call get_frontend_settings.cache_clear() after changing the environment."""
    return FrontendSettings()  # type: ignore[call-arg]  # fields come from the environment


def api_url_for(request: Request, *, api_url: str | None = None) -> str:
    """The API URL as seen from the browser: the page's own host name, so a LAN address keeps working."""
    settings = get_frontend_settings()
    explicit = api_url or settings.api_url
    if explicit:
        return explicit.rstrip("/")
    host = request.url.hostname or "localhost"
    if ":" in host:  # an IPv6 literal needs its brackets back in a URL
        host = f"[{host}]"
    port = settings.api_port or urlsplit(get_settings().api_url).port or 8000
    return f"{request.url.scheme}://{host}:{port}"


def _config_endpoint(api_url: str | None):  # type: ignore[no-untyped-def]
    async def config_js(request: Request) -> Response:
        # json.dumps quotes and escapes the value: a forged Host header cannot break out of the string.
        body = f"window.COMFYWS_API = {json.dumps(api_url_for(request, api_url=api_url))};\n"
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    return config_js


def create_app(root: Path, *, api_url: str | None = None, vendor: dict[str, Path] | None = None) -> Starlette:
    """Serve `root` (index.html at /), /config.js, and each existing `vendor` folder under /vendor/<name>/."""
    routes: list[Route | Mount] = [Route("/config.js", _config_endpoint(api_url))]
    for name, folder in (vendor or {}).items():
        if folder.is_dir():
            routes.append(Mount(f"/vendor/{name}", app=StaticFiles(directory=folder), name=f"vendor-{name}"))
    routes.append(Mount("/", app=StaticFiles(directory=root, html=True), name="static"))
    return Starlette(routes=routes)


def app_for(kind: FrontendKind, *, api_url: str | None = None) -> Starlette:
    """The client (frontend/client) or the admin dashboard (frontend/admin, Vue under /vendor/vue/)."""
    if kind is FrontendKind.CLIENT:
        return create_app(CLIENT_DIR, api_url=api_url)
    return create_app(ADMIN_DIR, api_url=api_url, vendor={"vue": VUE_DIST})
