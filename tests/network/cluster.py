"""The service spread over the hosts of a private test network, each piece started as an operator would start it
on its own machine: MariaDB, the Prefect server, the API and the health monitor on the api host; a simulated
node and a `comfyws worker` on every worker host. Hosts share nothing but the network and the one directory
that stands for shared storage (outputs and uploads); each process gets its settings from its environment only.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import Stack
from tests.network.central import (
    ADMIN_PASSWORD,
    GROUP,
    Central,
    api_env,
    database_env,
    start_mariadb,
    start_prefect_server,
    write_config,
)
from tests.network.netns import Host, PrivateNetwork
from tests.network.processes import START_DEADLINE_S, Process, Processes, clean_env, wait_exit, wait_http

_REGISTER_NODE = """
import os, sys, httpx
response = httpx.post(sys.argv[1] + "/api/v2/nodes/register", content=sys.argv[2], timeout=10,
                      headers={"Authorization": "Bearer " + os.environ["NODE_TOKEN"], "Content-Type": "application/json"})
print(response.status_code, response.text)
sys.exit(0 if response.is_success else 1)
"""


# --- a worker host --------------------------------------------------------------------------------------------


@dataclass
class WorkerHost:
    """One worker machine: its simulated node and (once the Prefect server is up) its `comfyws worker`."""

    host: Host
    data_dir: Path
    node: Process
    node_url: str
    worker: Process | None = None

    @property
    def node_id(self) -> str:
        return f"node-{self.host.label}"

    @property
    def worker_name(self) -> str:
        return f"worker-{self.host.label}"

    def control(self, **changes: Any) -> None:
        """Change the simulated node's fault switches (step_delay, fail_next, ...) at run time."""
        httpx.post(f"{self.node_url}/sim/control", json=changes, timeout=5).raise_for_status()

    def node_state(self) -> dict[str, Any]:
        response = httpx.get(f"{self.node_url}/sim/state", timeout=5)
        response.raise_for_status()
        return dict(response.json())


def start_node(processes: Processes, host: Host, data_dir: Path) -> WorkerHost:
    """`python -m comfyws.simnode` on the host's own address (not waiting for it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = host.free_port()
    argv = [
        sys.executable,
        "-m",
        "comfyws.simnode",
        "--host",
        host.address,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir / "simnode"),
        "--step-delay",
        "0.05",
        "--name",
        f"node-{host.label}",
    ]
    node = processes.start(host, f"{host.label}-simnode", argv, clean_env())
    return WorkerHost(host, data_dir, node, f"http://{host.address}:{port}")


def start_worker(processes: Processes, worker_host: WorkerHost, central: Central) -> None:
    """`comfyws worker --group default` on the host, told where the api host is (not waiting for it)."""
    argv = [
        sys.executable,
        "-m",
        "comfyws",
        "worker",
        "--group",
        GROUP,
        "--concurrency",
        "3",
        "--poll-interval",
        "5",
        "--name",
        worker_host.worker_name,
    ]
    label = worker_host.host.label
    worker_host.worker = processes.start(
        worker_host.host, f"{label}-worker", argv, central.env(worker_host.data_dir)
    )


def register_node(processes: Processes, worker_host: WorkerHost, api_url: str, *, node_token: str) -> Process:
    """POST /api/v2/nodes/register from the worker host itself, with the node token, as a node's agent would."""
    body = json.dumps(
        {
            "node_id": worker_host.node_id,
            "base_url": worker_host.node_url,
            "group": GROUP,
            "max_concurrent": 2,
        }
    )
    argv = [sys.executable, "-c", _REGISTER_NODE, api_url, body]
    name = f"{worker_host.host.label}-register"
    return processes.start(worker_host.host, name, argv, clean_env(NODE_TOKEN=node_token))


def _in_pool(worker_host: WorkerHost, prefect_api_url: str) -> bool:
    from deployments.names import pool_name

    worker = worker_host.worker
    if worker is None or not worker.alive():
        raise RuntimeError(f"{worker_host.worker_name} is not running:\n{worker.output() if worker else ''}")
    url = f"{prefect_api_url}/work_pools/{pool_name(GROUP)}/workers/filter"
    try:
        response = httpx.post(url, json={}, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and any(w["name"] == worker_host.worker_name for w in response.json())


def wait_in_pool(worker_host: WorkerHost, central: Central) -> None:
    wait_until(
        lambda: _in_pool(worker_host, central.prefect_api_url),
        timeout=START_DEADLINE_S,
        interval=0.1,
        what=f"{worker_host.worker_name} to join the work pool",
    )


# --- the whole cluster ----------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """The running service: `stack` talks to the API like a client (the api host's view), `hosts` are the
    worker machines."""

    network: PrivateNetwork
    processes: Processes
    central: Central
    stack: Stack
    hosts: list[WorkerHost]


def _central(network: PrivateNetwork, root: Path, prefect_api_url: str, server_url: str) -> Central:
    write_config(root / "config.yaml")
    return Central(
        prefect_api_url=prefect_api_url,
        api_url=f"http://{network.api.address}:{network.api.free_port()}",
        database_urls=database_env(server_url),
        config_path=root / "config.yaml",
        shared_dir=root / "shared",
        internal_token=secrets.token_hex(16),
    )


def _start(processes: Processes, network: PrivateNetwork, root: Path, *, node_token: str) -> Cluster:
    """Everything, overlapped where nothing depends on it: the Prefect server boots slowest."""
    api_host, api_dir = network.api, root / "api-host"
    prefect, prefect_api_url = start_prefect_server(processes, api_host, api_dir / "prefect-server")
    hosts = [start_node(processes, host, root / host.label) for host in network.workers]
    central = _central(
        network, root, prefect_api_url, start_mariadb(processes, api_host, password=secrets.token_hex(12))
    )
    port = central.api_url.rsplit(":", 1)[1]
    api = processes.start(
        api_host,
        "api",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            api_host.address,
            "--port",
            port,
            "--log-level",
            "warning",
        ],
        api_env(central, api_dir, node_token=node_token),
    )
    wait_http(f"{prefect_api_url}/health", prefect)
    # Pools are upserted, so workers starting while `comfyws deploy` runs is safe.
    deploy = processes.start(
        api_host, "deploy", [sys.executable, "-m", "comfyws", "deploy"], central.env(api_dir)
    )
    for worker_host in hosts:
        start_worker(processes, worker_host, central)
    wait_http(f"{central.api_url}/health", api)
    processes.start(api_host, "monitor", [sys.executable, "-m", "comfyws", "monitor"], central.env(api_dir))
    for worker_host in hosts:
        wait_http(f"{worker_host.node_url}/system_stats", worker_host.node)
    for registration in [register_node(processes, h, central.api_url, node_token=node_token) for h in hosts]:
        wait_exit(registration)
    wait_exit(deploy, timeout=120)
    for worker_host in hosts:
        wait_in_pool(worker_host, central)
    stack = Stack(
        root=root,
        api_url=central.api_url,
        prefect_url=prefect_api_url,
        api_process=api.popen,
        admin_credentials=("admin", ADMIN_PASSWORD),
    )
    return Cluster(network, processes, central, stack, hosts)


@contextmanager
def running_cluster(network: PrivateNetwork, root: Path) -> Iterator[Cluster]:
    """Start the service over the network's hosts; stop every process on exit, whatever happened."""
    processes = Processes(logs=root / "logs")
    processes.logs.mkdir(parents=True, exist_ok=True)
    try:
        yield _start(processes, network, root, node_token=secrets.token_hex(16))
    except BaseException as exc:
        exc.add_note(f"logs under {processes.logs}:\n{processes.report()}")
        raise
    finally:
        processes.stop_all()
