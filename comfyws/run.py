"""`comfyws run`: the whole service on one machine: Prefect server, databases, nodes, workers, API, front ends."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from functools import partial

from comfyws.config import ServiceConfig, get_config
from comfyws.settings import get_settings
from comfyws.supervisor import ChildSpec, StopTier, Supervisor
from deployments.prefect_server import server_command

log = logging.getLogger("comfyws.run")


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    client: int = 8001
    admin: int = 8002
    prefect: int = 4200
    simnode: int = 8188


def _prefect_env(ports: Ports) -> dict[str, str]:
    """Use the operator's Prefect server when PREFECT_API_URL is set, else a local one on SQLite."""
    if os.environ.get("PREFECT_API_URL"):
        return {}
    home = get_settings().data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports.prefect}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(ports.prefect),
    }


def _start_prefect(sup: Supervisor, ports: Ports) -> None:
    if not sup.env.get("PREFECT_HOME"):
        return
    sup.add(ChildSpec("prefect-server", server_command(host="127.0.0.1", port=ports.prefect), StopTier.SCHEDULER,
                      ready_url=f"http://127.0.0.1:{ports.prefect}/api/health", ready_timeout=120))


def _register_simnode(url: str) -> None:
    from workers import registry

    registry.register_node(node_id="simnode-1", base_url=url, group="default", max_concurrent=2,
                           capabilities=[], weight=1.0)


def _start_simnode(sup: Supervisor, config: ServiceConfig, ports: Ports) -> None:
    """With no real nodes configured, a simulated node stands in (and says so); a restart keeps its port.

    The demo turns its sampler previews on (`--preview-method auto`; ComfyUI's default is none) so that the
    pages show them; the node's start-up line says which preview method it runs with."""
    if config.nodes.static_nodes:
        return
    url = f"http://127.0.0.1:{ports.simnode}"
    # `python -m comfyws.simnode` is `comfyws simnode` without importing every command: a restart is seconds sooner.
    args = [sys.executable, "-m", "comfyws.simnode", "--port", str(ports.simnode), "--name", "simnode-1",
            "--preview-method", "auto", "--data-dir", str(get_settings().data_dir / "simnode")]
    sup.add(ChildSpec("simnode", args, StopTier.NODES, ready_url=f"{url}/system_stats",
                      on_ready=partial(_register_simnode, url)))


def _prepare(config: ServiceConfig) -> str | None:
    """Databases migrated, admin account, static nodes synced, pools and deployments in place: idempotent.

    Returns the admin password when this start generated one."""
    from api.services.auth import ensure_admin_account
    from database import migrate
    from database.engine import session_scope
    from database.enums import DatabaseName
    from deployments.setup import ensure_infrastructure
    from workers import registry
    from workflows.catalog import get_catalog

    get_catalog()  # a bad workflow mapping stops start-up here, naming the key
    migrate.init()
    with session_scope(DatabaseName.ADMIN) as session:
        password = ensure_admin_account(session)
    registry.sync_static_nodes(config.nodes)
    asyncio.run(ensure_infrastructure(config))
    return password


def _comfyws(*args: str) -> list[str]:
    return [sys.executable, "-m", "comfyws", *args]


def _local_address(host: str) -> str:
    """Where this machine reaches a server listening on `host`: loopback for a wildcard, else the address."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _start_front(sup: Supervisor, ports: Ports, *, host: str, frontends: bool) -> None:
    """The API, then the two front ends, on `host` (127.0.0.1 unless the operator exposes them)."""
    local = _local_address(host)
    # The API's CORS answers the front ends' origins (docs/SECURITY.md): tell it their ports.
    sup.env.setdefault("COMFYWS_API_FRONTEND_PORTS", json.dumps([ports.client, ports.admin]))
    sup.add(ChildSpec("api", _comfyws("api", "--host", host, "--port", str(ports.api)), StopTier.FRONT,
                      ready_url=f"http://{local}:{ports.api}/health"))
    if not frontends:
        return
    for name, kind, port in (("client-ui", "client", ports.client), ("admin-ui", "admin", ports.admin)):
        sup.add(ChildSpec(name, _comfyws("frontend", kind, "--host", host, "--port", str(port)), StopTier.FRONT,
                          ready_url=f"http://{local}:{port}/"))


def start_all(ports: Ports, *, host: str = "127.0.0.1", frontends: bool = True) -> tuple[Supervisor, str | None]:
    """Start every part in dependency order, each once it can be used; on any failure stop what started."""
    config = get_config()
    settings = get_settings()
    sup = Supervisor(log_dir=settings.data_dir / "logs", state_path=settings.data_dir / "run.json",
                     info={"host": host, "ports": asdict(ports)})
    sup.signals.install()
    sup.env.update(_prefect_env(ports))
    os.environ.update(sup.env)
    sup.env["COMFYWS_API_URL"] = f"http://{_local_address(host)}:{ports.api}"  # workers and the monitor post here
    try:
        _start_prefect(sup, ports)
        admin_password = _prepare(config)
        _start_simnode(sup, config, ports)
        for group in config.nodes.group_names():
            for index in range(config.nodes.group(group).workers):
                sup.add(ChildSpec(f"worker-{group}-{index}", _comfyws("worker", "--group", group), StopTier.WORKERS))
        sup.add(ChildSpec("monitor", _comfyws("monitor"), StopTier.MONITOR))
        _start_front(sup, ports, host=host, frontends=frontends)
    except BaseException:
        sup.stop_all(grace=0)
        raise
    return sup, admin_password


def supervise(sup: Supervisor, *, grace: float) -> int:
    """Keep the service up (restarting what crashes) until SIGTERM, SIGINT or SIGHUP; then stop it in order."""
    try:
        sup.supervise()
        log.info("%s received: stopping (workers get %.0fs to finish their runs)",
                 sup.signals.last.name if sup.signals.last else "stop", grace)
        return 0
    finally:
        sup.stop_all(grace=grace)
        log.info("stopped")
