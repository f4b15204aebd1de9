"""`comfyws run` as a real subprocess on free private ports with its own data dir, and what it left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fixtures.prefect_server import PROJECT_ROOT, free_port, wait_until
from tests.fixtures.stack import ADMIN_PASSWORD, FINAL, _service_env

START_DEADLINE_S = 240.0  # a cold start on 2 busy cores
PORT_NAMES = ("api", "client", "admin", "prefect", "simnode")


def _process_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, session id, start time) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[3]), int(fields[19])


def _cwd(entry: Path) -> str:
    try:
        return os.readlink(entry / "cwd")
    except OSError:
        return ""


def sessions_members(session_ids: set[int]) -> dict[int, int]:
    """pid -> start time of every live process in one of these sessions (each child leads its own)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _process_stat(int(entry.name))) is not None:
            state, session, started = stat
            if session in session_ids and state != "Z":
                found[int(entry.name)] = started
    return found


def still_alive(processes: dict[int, int]) -> list[int]:
    """Those of `processes` (pid -> start time) that still run (a zombie or a reused pid does not count)."""
    return [pid for pid, started in processes.items()
            if (stat := _process_stat(pid)) is not None and stat[0] != "Z" and stat[2] == started]


def port_free(port: int) -> bool:
    """Nothing listens on `port`: a server could bind it now (as servers do, through the TIME_WAIT of old
    connections)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, status = line.split()[1:4]
        address, hex_port = local.split(":")
        if status == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@dataclass
class RunningService:
    root: Path
    process: subprocess.Popen[bytes]  # `comfyws run`, or the shell that started it in the background
    ports: dict[str, int]
    env: dict[str, str]
    _admin_token: str | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def output(self) -> str:
        return (self.root / "run.out").read_text(errors="replace")

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / "data" / "run.json").read_text()))
        except (OSError, ValueError):
            return {}

    def child(self, name: str) -> dict[str, Any]:
        return next(c for c in self.state()["children"] if c["name"] == name)

    def supervisor_pid(self) -> int:
        return int(self.state()["pid"])

    def processes(self) -> dict[int, int]:
        """Every process of the service now: the supervisor and each child's whole session."""
        state = self.state()
        members = sessions_members({c["pid"] for c in state.get("children", []) if c["pid"]})
        if "pid" in state and (stat := _process_stat(int(state["pid"]))) is not None:
            members[int(state["pid"])] = stat[2]
        return members

    def _started_here(self) -> list[int]:
        """Whatever runs in this service's folder (its children inherit it), whether run.json knows it or not."""
        return [int(entry.name) for entry in Path("/proc").iterdir()
                if entry.name.isdigit() and _cwd(entry).startswith(str(self.root))]

    def wait_phase(self, phase: str, *, timeout: float = START_DEADLINE_S) -> None:
        def reached() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"comfyws run exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            return self.state().get("phase") == phase

        wait_until(reached, timeout=timeout, interval=0.25, what=f"comfyws run to be {phase}")

    def kill_everything(self) -> None:
        """Teardown whatever happened: no test leaves a server behind."""
        for pid in {*self.processes(), *self._started_here()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    # ----- the API, as a client would use it -----

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30.0)

    def admin_token(self) -> str:
        if self._admin_token is None:
            with self.http() as http:
                response = http.post("/admin/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert response.status_code == 200, response.text
            self._admin_token = str(response.json()["access_token"])
        return self._admin_token

    def client_token(self) -> str:
        with self.http(self.admin_token()) as http:
            registered = http.post("/api/v2/auth/register", json={"client_name": f"run-{os.urandom(4).hex()}"})
            assert registered.status_code == 201, registered.text
            body = registered.json()
            token = http.post("/api/v2/auth/token",
                              json={"client_id": body["client_id"], "client_secret": body["client_secret"]})
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])

    def node_status(self, node_id: str) -> str | None:
        with self.http(self.admin_token()) as http:
            nodes = http.get("/api/v2/admin/nodes").json()
        return next((n["status"] for n in nodes if n["node_id"] == node_id), None)

    def submit(self, token: str, **body: Any) -> str:
        with self.http(token) as http:
            response = http.post("/api/v2/tasks/text-to-image", json={"prompt": "a lighthouse", **body})
        assert response.status_code == 202, response.text
        return str(response.json()["task_id"])

    def task_status(self, token: str, task_id: str) -> str:
        with self.http(token) as http:
            return str(http.get(f"/api/v2/tasks/{task_id}").json()["status"])

    def wait_final(self, token: str, task_id: str, *, timeout: float = 90.0) -> str:
        return str(wait_until(lambda: (s := self.task_status(token, task_id)) in FINAL and s,
                              timeout=timeout, interval=0.2, what=f"task {task_id} to finish"))


def _write_config(path: Path) -> None:
    """The project's config.yaml with quicker health probes, so a restarted node is healthy again soon."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    config["nodes"]["health"] = {"interval_seconds": 0.5, "timeout_seconds": 2, "unhealthy_after": 2,
                                 "healthy_after": 1}
    path.write_text(yaml.safe_dump(config))


def _environment(root: Path) -> dict[str, str]:
    """The caller's environment without another test's Prefect server or API settings, plus the service's own."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_", "COMFYWS_"))}
    env.update(_service_env(root))
    for tuned in ("COMFYWS_FLOW_IDLE_TIMEOUT_S", "COMFYWS_FLOW_SLOT_POLL_S"):  # the flows' defaults, as shipped
        env.pop(tuned, None)
    return env


def start_service(root: Path, *args: str, background: bool = False) -> RunningService:
    """Start `comfyws run` (as a background job of a non-interactive shell when `background`: SIGINT ignored)."""
    root.mkdir(parents=True, exist_ok=True)
    _write_config(root / "config.yaml")
    ports = {name: free_port() for name in PORT_NAMES}
    command = [sys.executable, "-m", "comfyws", "run", *(f"--{name}-port={port}" for name, port in ports.items()),
               *args]
    if background:
        command = ["sh", "-c", " ".join(command) + " & wait"]
    with (root / "run.out").open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=_environment(root), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return RunningService(root=root, process=process, ports=ports, env=_environment(root))
