"""A small ASGI app per front end: its static files plus a generated /config.js saying where the API (and, for
the admin dashboard, the Prefect UI) is."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field
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
    prefect_ui: str | None = Field(
        None, description="The Prefect UI's base URL the admin links flow runs to; unset = from prefect_api_url"
    )
    prefect_api_url: str | None = Field(
        None,
        # Same precedence as the API's launcher: its own setting first, then Prefect's standard variable.
        validation_alias=AliasChoices("COMFYWS_API_PREFECT_API_URL", "PREFECT_API_URL"),
        description="Prefect's API URL (COMFYWS_API_PREFECT_API_URL or PREFECT_API_URL); its UI is this minus /api",
    )


@lru_cache
def get_frontend_settings() -> FrontendSettings:
    """Read once; tests call get_frontend_settings.cache_clear() after changing the environment."""
    return FrontendSettings()


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _page_host(request: Request) -> str:
    host = request.url.hostname or "localhost"
    return f"[{host}]" if ":" in host else host  # an IPv6 literal needs its brackets back in a URL


def api_url_for(request: Request, *, api_url: str | None = None) -> str:
    """The API URL as seen from the browser: the page's own host name, so a LAN address keeps working."""
    settings = get_frontend_settings()
    explicit = api_url or settings.api_url
    if explicit:
        return explicit.rstrip("/")
    port = settings.api_port or urlsplit(get_settings().api_url).port or 8000
    return f"{request.url.scheme}://{_page_host(request)}:{port}"


def prefect_ui_for(request: Request) -> str | None:
    """The Prefect UI as seen from the browser: COMFYWS_FRONTEND_PREFECT_UI, else Prefect's API URL minus /api
    with a loopback host swapped for the page's own host (a server on this machine, reached over the LAN)."""
    settings = get_frontend_settings()
    if settings.prefect_ui:
        return settings.prefect_ui.rstrip("/")
    if not settings.prefect_api_url:
        return None
    parts = urlsplit(settings.prefect_api_url.rstrip("/").removesuffix("/api"))
    netloc = parts.netloc
    if parts.hostname in _LOOPBACK:
        netloc = _page_host(request) + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl().rstrip("/")


def _config_endpoint(api_url: str | None, *, prefect_ui: bool):  # type: ignore[no-untyped-def]
    async def config_js(request: Request) -> Response:
        # json.dumps quotes and escapes each value: a forged Host header cannot break out of the string.
        body = f"window.COMFYWS_API = {json.dumps(api_url_for(request, api_url=api_url))};\n"
        ui = prefect_ui_for(request) if prefect_ui else None
        if ui:
            body += f"window.COMFYWS_PREFECT_UI = {json.dumps(ui)};\n"
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    return config_js


def create_app(
    root: Path,
    *,
    api_url: str | None = None,
    vendor: dict[str, Path] | None = None,
    prefect_ui: bool = False,
) -> Starlette:
    """Serve `root` (index.html at /), /config.js (naming the Prefect UI too when `prefect_ui`), and each
    existing `vendor` folder under /vendor/<name>/."""
    routes: list[Route | Mount] = [Route("/config.js", _config_endpoint(api_url, prefect_ui=prefect_ui))]
    for name, folder in (vendor or {}).items():
        if folder.is_dir():
            routes.append(Mount(f"/vendor/{name}", app=StaticFiles(directory=folder), name=f"vendor-{name}"))
    routes.append(Mount("/", app=StaticFiles(directory=root, html=True), name="static"))
    return Starlette(routes=routes)


def app_for(kind: FrontendKind, *, api_url: str | None = None) -> Starlette:
    """The client (frontend/client) or the admin dashboard (frontend/admin, Vue under /vendor/vue/)."""
    if kind is FrontendKind.CLIENT:
        return create_app(CLIENT_DIR, api_url=api_url)
    return create_app(ADMIN_DIR, api_url=api_url, vendor={"vue": VUE_DIST}, prefect_ui=True)
