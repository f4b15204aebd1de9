"""`comfyws api`: serve the HTTP facade with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("api")
    def serve(
        host: Annotated[
            str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes the API on the network")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    ) -> None:
        """Serve the REST API, WebSockets and docs (OpenAPI at /docs)."""
        import uvicorn  # late: other commands should not pay for importing the server

        uvicorn.run("api.main:app", host=host, port=port, log_level=log_level)
