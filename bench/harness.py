"""A whole service for benchmarks: Prefect server (SQLite or PostgreSQL), databases, a simulated node,
the worker and the API, all as real processes on this machine; plus /proc readings of their CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.prefect_server import server_command
from tests.fixtures.prefect_server import free_port, start_worker, wait_until
from tests.fixtures.simnode import SimNode, start_simnode
from tests.fixtures.stack import _reset_caches, _service_env, _start_api, _write_config

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and all its live descendants (the Prefect server runs uvicorn children)."""
    total = cpu_seconds(pid)
    for child in _children(pid):
        total += tree_cpu_seconds(child)
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class BenchStack:
    root: Path
    api_url: str
    prefect_pid: int
    api_process: subprocess.Popen[bytes]
    worker_pid: int
    nodes: list[SimNode] = field(default_factory=list)
    token: str = ""

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)


def _postgres_url() -> str:
    name = f"comfyws_bench_{os.getpid()}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE IF EXISTS {name}"],
                   check=True, capture_output=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


@contextmanager
def _prefect_server(home: Path, *, postgres: bool) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    db_url = _postgres_url() if postgres else f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    env = {
        "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": db_url, "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(server_command(host="127.0.0.1", port=port), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until(lambda: _healthy(env["PREFECT_API_URL"]), timeout=120, interval=0.2, what="prefect server")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):  # a fault bench may have killed and replaced it
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def bench_stack(*, postgres: bool = False, step_delay: float = 0.02, nodes: int = 1,
                concurrency: int = 8, max_concurrent: int = 2) -> Iterator[BenchStack]:
    root = Path(tempfile.mkdtemp(prefix="comfyws-bench-"))
    _write_config(root / "config.yaml")
    os.environ.update(_service_env(root))
    os.environ["COMFYWS_FLOW_IDLE_TIMEOUT_S"] = "60"
    _reset_caches()
    from comfyws.config import get_config
    from database import migrate
    from deployments.setup import ensure_infrastructure
    from workers import registry

    (root / "prefect").mkdir()
    with _prefect_server(root / "prefect", postgres=postgres) as prefect:
        migrate.init()
        asyncio.run(ensure_infrastructure(get_config()))
        api_process, api_url = _start_api(root)
        os.environ["COMFYWS_API_URL"] = api_url
        stack = BenchStack(root=root, api_url=api_url, prefect_pid=prefect.pid, api_process=api_process,
                           worker_pid=0)
        try:
            for index in range(nodes):
                node = start_simnode(step_delay=step_delay, data_dir=root / f"node-{index}")
                registry.register_node(node_id=f"bench-{index}", base_url=node.url, group="default",
                                       max_concurrent=max_concurrent, capabilities=[], weight=1.0)
                stack.nodes.append(node)
            worker = start_worker("default", root, concurrency=concurrency, poll_interval=5.0)
            stack.worker_pid = worker.process.pid
            stack.token = _token(api_url)
            yield stack
        finally:
            for node in stack.nodes:
                node.stop()
            with contextlib.suppress(ProcessLookupError):  # a fault bench may have killed and replaced them
                if stack.worker_pid:
                    os.kill(stack.worker_pid, signal.SIGKILL)
                os.killpg(stack.api_process.pid, signal.SIGTERM)
                stack.api_process.wait(timeout=20)
            shutil.rmtree(root, ignore_errors=True)


def _token(api_url: str) -> str:
    admin = httpx.post(f"{api_url}/admin/auth/login", json={"username": "admin",
                                                             "password": os.environ["COMFYWS_API_ADMIN_PASSWORD"]})
    headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    client = httpx.post(f"{api_url}/api/v2/auth/register", headers=headers,
                        json={"client_name": f"bench-{time.time_ns()}", "description": "bench"}).json()
    token = httpx.post(f"{api_url}/api/v2/auth/token",
                       json={"client_id": client["client_id"], "client_secret": client["client_secret"]}).json()
    return str(token["access_token"])
