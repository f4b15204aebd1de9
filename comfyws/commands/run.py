"""`comfyws run`: start the whole service and print where to go."""

from __future__ import annotations

import logging

import typer

from comfyws.run import Ports, start_all, supervise


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        api_port: int = typer.Option(8000, help="REST API port"),
        client_port: int = typer.Option(8001, help="HTML client port"),
        admin_port: int = typer.Option(8002, help="Admin dashboard port"),
        prefect_port: int = typer.Option(4200, help="Local Prefect server port (when PREFECT_API_URL is unset)"),
        simnode_port: int = typer.Option(8188, help="Simulated node port (when no nodes are configured)"),
    ) -> None:
        """Start the Prefect server, databases, workers, API, front ends and (without real nodes) a simulated node."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        for noisy in ("httpx", "alembic", "prefect"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        ports = Ports(api=api_port, client=client_port, admin=admin_port, prefect=prefect_port,
                      simnode=simnode_port)
        typer.echo("Starting ComfyUI Web Service ...")
        sup, admin_password = start_all(ports)
        admin_line = (f"  Admin sign-in     admin / {admin_password}   (generated now, shown once)\n"
                      if admin_password else "")
        typer.echo(
            "\nComfyUI Web Service is up:\n"
            f"  API + docs        http://localhost:{ports.api}/docs\n"
            f"  HTML client       http://localhost:{ports.client}/\n"
            f"  Admin dashboard   http://localhost:{ports.admin}/\n"
            f"  Prefect UI        {sup.env['PREFECT_API_URL'].removesuffix('/api')}\n"
            f"  Logs              {sup.log_dir}\n"
            f"{admin_line}"
            "Try: comfyws generate text-to-image --prompt 'a lighthouse at dusk' --wait\n"
            "Ctrl-C stops everything."
        )
        raise typer.Exit(supervise(sup))
