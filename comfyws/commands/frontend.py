"""`comfyws frontend client|admin`: serve one of the browser front ends."""

from __future__ import annotations

from typing import Annotated

import typer

from frontend.server import FrontendKind

DEFAULT_PORTS = {FrontendKind.CLIENT: 8001, FrontendKind.ADMIN: 8002}

KindArg = Annotated[FrontendKind, typer.Argument(help="client (people who generate) or admin (operators)")]
HostOpt = Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes it on the network")]
PortOpt = Annotated[int | None, typer.Option(help="Port; default 8001 for client, 8002 for admin")]
ApiUrlOpt = Annotated[
    str | None,
    typer.Option(help="API URL the page calls (default: the page's host, port 8000; env COMFYWS_FRONTEND_API_URL)"),
]


def register(app: typer.Typer) -> None:
    @app.command("frontend")
    def frontend(kind: KindArg, host: HostOpt = "127.0.0.1", port: PortOpt = None, api_url: ApiUrlOpt = None) -> None:
        """Serve the HTML client or the admin dashboard, with /config.js pointing the page at the API."""
        import uvicorn  # imported here: other commands should not pay for it

        from frontend.server import app_for

        chosen = port or DEFAULT_PORTS[kind]
        typer.echo(f"Serving the {kind.value} front end on http://{host}:{chosen}/")
        uvicorn.run(app_for(kind, api_url=api_url), host=host, port=chosen, log_level="warning")
