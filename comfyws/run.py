"""`comfyws run`: the whole service on one machine: Prefect server, databases, nodes, workers, API, front ends."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from comfyws.config import ServiceConfig, get_config
from comfyws.settings import get_settings
from comfyws.supervisor import Supervisor
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
    child = sup.start("prefect-server", server_command(host="127.0.0.1", port=ports.prefect))
    sup.wait_http(child, f"http://127.0.0.1:{ports.prefect}/api/health", timeout=120)


def _start_simnode(sup: Supervisor, config: ServiceConfig, ports: Ports) -> None:
    """With no real nodes configured, a simulated node stands in (and says so)."""
    if config.nodes.static_nodes:
        return
    child = sup.start_comfyws("simnode", "simnode", "--port", str(ports.simnode), "--name", "simnode-1",
                              "--data-dir", str(get_settings().data_dir / "simnode"))
    url = f"http://127.0.0.1:{ports.simnode}"
    sup.wait_http(child, f"{url}/system_stats")
    from workers import registry

    registry.register_node(node_id="simnode-1", base_url=url, group="default", max_concurrent=2,
                           capabilities=[], weight=1.0)


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


def start_all(ports: Ports, *, frontends: bool = True) -> tuple[Supervisor, str | None]:
    config = get_config()
    settings = get_settings()
    sup = Supervisor(log_dir=settings.data_dir / "logs")
    sup.env.update(_prefect_env(ports))
    os.environ.update(sup.env)
    sup.env["COMFYWS_API_URL"] = f"http://127.0.0.1:{ports.api}"
    try:
        _start_prefect(sup, ports)
        admin_password = _prepare(config)
        _start_simnode(sup, config, ports)
        for group in config.nodes.group_names():
            for index in range(config.nodes.group(group).workers):
                sup.start_comfyws(f"worker-{group}-{index}", "worker", "--group", group)
        sup.start_comfyws("monitor", "monitor")
        api = sup.start_comfyws("api", "api", "--host", "0.0.0.0", "--port", str(ports.api))
        sup.wait_http(api, f"http://127.0.0.1:{ports.api}/health")
        if frontends:
            client = sup.start_comfyws("client-ui", "frontend", "client", "--port", str(ports.client))
            admin = sup.start_comfyws("admin-ui", "frontend", "admin", "--port", str(ports.admin))
            sup.wait_http(client, f"http://127.0.0.1:{ports.client}/")
            sup.wait_http(admin, f"http://127.0.0.1:{ports.admin}/")
    except BaseException:
        sup.stop_all()
        raise
    return sup, admin_password


def supervise(sup: Supervisor) -> int:
    """Block until Ctrl-C or until a child dies; then stop everything."""
    try:
        while (dead := sup.first_exited()) is None:
            time.sleep(1.0)
        log.error("%s exited with %s; stopping.\n%s", dead.name, dead.process.returncode, sup.tail(dead))
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        sup.stop_all()
