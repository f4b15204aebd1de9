"""`comfyws run`: start the whole service, print where to go, and supervise it until a stop signal."""

from __future__ import annotations

import logging

import typer

from comfyws.run import Ports, start_all, supervise
from comfyws.supervisor import StartupFailed, StopRequested, Supervisor

LOOPBACK = "127.0.0.1"


def _banner(ports: Ports, *, host: str, sup: Supervisor, admin_password: str | None, grace: float) -> str:
    shown = "localhost" if host in (LOOPBACK, "0.0.0.0", "::") else host
    admin_line = (f"  Admin sign-in     admin / {admin_password}   (generated now, shown once)\n"
                  if admin_password else "")
    if host == LOOPBACK:
        exposure = ("Listening on 127.0.0.1 only (this machine). To expose the API and front ends on the network:\n"
                    "  comfyws run --host 0.0.0.0   (or one interface's address; put TLS in front of it)\n")
    else:
        exposure = f"Listening on {host}: the API and front ends are reachable from the network.\n"
    return (
        "\nComfyUI Web Service is up:\n"
        f"  API + docs        http://{shown}:{ports.api}/docs\n"
        f"  HTML client       http://{shown}:{ports.client}/\n"
        f"  Admin dashboard   http://{shown}:{ports.admin}/\n"
        f"  Prefect UI        {sup.env['PREFECT_API_URL'].removesuffix('/api')}\n"
        f"  Logs              {sup.log_dir}\n"
        f"  Processes         {sup.state_path}\n"
        f"{admin_line}{exposure}"
        "Try: comfyws generate text-to-image --prompt 'a lighthouse at dusk' --wait\n"
        f"Ctrl-C, SIGTERM or SIGHUP stops everything (workers get {grace:g}s to finish their jobs)."
    )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        api_port: int = typer.Option(8000, help="REST API port"),
        client_port: int = typer.Option(8001, help="HTML client port"),
        admin_port: int = typer.Option(8002, help="Admin dashboard port"),
        prefect_port: int = typer.Option(4200, help="Local Prefect server port (when PREFECT_API_URL is unset)"),
        simnode_port: int = typer.Option(8188, help="Simulated node port (when no nodes are configured)"),
        host: str = typer.Option(LOOPBACK, envvar="COMFYWS_RUN_HOST",
                                 help="Interface of the API and front ends; 0.0.0.0 exposes them on the network"),
        grace: float = typer.Option(30.0, min=0, envvar="COMFYWS_RUN_GRACE_S",
                                    help="On stop, seconds workers get to finish in-flight jobs before handing "
                                         "them back"),
    ) -> None:
        """Start the Prefect server, databases, workers, API, front ends and (without real nodes) a simulated node;
        restart any that crashes; stop them all in order on SIGTERM, SIGINT or SIGHUP."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        for noisy in ("httpx", "alembic", "prefect"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        ports = Ports(api=api_port, client=client_port, admin=admin_port, prefect=prefect_port,
                      simnode=simnode_port)
        typer.echo("Starting ComfyUI Web Service ...")
        try:
            sup, admin_password = start_all(ports, host=host)
        except StopRequested:
            typer.echo("Stopped during start-up.")
            raise typer.Exit(0) from None
        except StartupFailed as exc:
            typer.echo(f"error: start-up failed: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(_banner(ports, host=host, sup=sup, admin_password=admin_password, grace=grace))
        raise typer.Exit(supervise(sup, grace=grace))
