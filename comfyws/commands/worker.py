"""`comfyws worker` (run the in-process Prefect worker of one node group) and `comfyws deploy` (pools, queues,
deployments)."""

from __future__ import annotations

import asyncio
import logging

import typer

from comfyws.config import get_config


def worker(
    group: str = typer.Option(
        "default", "--group", help="Node group: the worker serves pool comfyui-<group>"
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, help="Flow runs in flight; default: the group's config.yaml value"
    ),
    poll_interval: float = typer.Option(
        10.0, "--poll-interval", min=0.1, help="Fallback poll seconds (Scheduled events wake it at once)"
    ),
    name: str | None = typer.Option(None, "--name", help="Worker name; default: a unique one"),
) -> None:
    """Run the in-process Prefect worker of one node group until SIGTERM/SIGINT."""
    from deployments.names import pool_name
    from deployments.serve import serve_until_signalled
    from deployments.worker import ComfyWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit = concurrency if concurrency is not None else get_config().nodes.group(group).concurrency
    comfy_worker = ComfyWorker(pool_name(group), limit=limit, name=name, poll_interval=poll_interval)
    typer.echo(f"Worker {comfy_worker.name} serving {pool_name(group)} with concurrency {limit}")
    serve_until_signalled(comfy_worker)
    typer.echo(f"Worker {comfy_worker.name} stopped")


def deploy() -> None:
    """Create or update the work pools, queues and deployments (prefect.yaml x node groups)."""
    from deployments.setup import ensure_infrastructure

    for deployment in asyncio.run(ensure_infrastructure(get_config())):
        typer.echo(deployment)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("deploy")(deploy)
