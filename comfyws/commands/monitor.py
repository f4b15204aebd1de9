"""`comfyws monitor`: probe every enabled node on an interval and keep the registry's health up to date."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

import typer

from comfyws.config import ConfigError, get_config

if TYPE_CHECKING:  # the CLI starts faster without importing the database layer for every command
    from workers.balancer import NodeSnapshot
    from workers.health import HealthMonitor


def monitor(
    once: bool = typer.Option(False, "--once", help="Probe every node once, print the result and exit"),
    interval: float | None = typer.Option(
        None, "--interval", min=0.1, help="Seconds between rounds; default: nodes.health.interval_seconds"
    ),
    sync: bool = typer.Option(True, "--sync/--no-sync", help="First make the registry match config.yaml"),
) -> None:
    """Run the health monitor: mark nodes healthy or unhealthy and read their models and node classes."""
    from workers import registry
    from workers.health import HealthMonitor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        nodes_config = get_config().nodes
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    health = nodes_config.health
    if interval is not None:
        health = health.model_copy(update={"interval_seconds": interval})
    if sync:
        registry.sync_static_nodes(nodes_config)
    health_monitor = HealthMonitor(health)
    if once:
        asyncio.run(health_monitor.probe_once())
        _print_nodes(registry.list_snapshots())
        return
    typer.echo(f"Monitoring nodes every {health.interval_seconds:g}s (Ctrl-C stops)")
    asyncio.run(_run_until_signalled(health_monitor))


async def _run_until_signalled(health_monitor: HealthMonitor) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await health_monitor.run_forever(stop=stop)


def _print_nodes(snapshots: list[NodeSnapshot]) -> None:
    typer.echo(f"{'NODE':<20} {'GROUP':<10} {'STATUS':<10} {'FLAGS':<16} {'QUEUE':>5} {'CKPTS':>5}  URL")
    for node in snapshots:
        flags = ",".join(f for f, on in (("disabled", not node.enabled), ("draining", node.draining)) if on)
        typer.echo(
            f"{node.node_id:<20} {node.group:<10} {node.status:<10} {flags or '-':<16} "
            f"{node.queue_depth:>5} {len(node.checkpoints):>5}  {node.base_url}"
        )


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
