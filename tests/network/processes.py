"""Processes of the multi-host test: each started on one host with its own log and environment, and all
stopped together (services first, then the databases and Prefect server they use), whatever happened."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fixtures.prefect_server import PROJECT_ROOT, wait_until
from tests.network.netns import Host

START_DEADLINE_S = 60.0


@dataclass
class Process:
    """A process started on one host, with its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to its whole process group (the process and anything it started)."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 15.0) -> None:
        """Signal it and wait; SIGKILL when it does not end in time."""
        self.send(sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self.popen.wait(timeout=timeout)


@dataclass
class Processes:
    """Every process the cluster started, stopped newest first; and directories to remove afterwards."""

    logs: Path
    started: list[Process] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)

    def start(self, host: Host, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.logs / f"{name}.log"
        process = Process(name, host.popen(argv, env=env, log=log, cwd=PROJECT_ROOT), log)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Services first, then what they use (databases, Prefect server), each tier all at once."""
        base = {"mariadb", "prefect-server"}
        for tier in (
            [p for p in self.started if p.name not in base],
            [p for p in self.started if p.name in base],
        ):
            for process in tier:
                process.send(signal.SIGTERM)
            for process in tier:
                process.stop()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)

    def report(self) -> str:
        """The tail of every log, for a failure message."""
        return "\n".join(f"--- {p.name} (alive={p.alive()})\n{p.output()}" for p in self.started)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any PREFECT_*/COMFYWS_* (each host gets only what it is told)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "COMFYWS_"))}
    return {**base, "PYTHONUNBUFFERED": "1", **extra}


def _http_ok(url: str, process: Process) -> bool:
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.output()}")
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_http(url: str, process: Process) -> None:
    wait_until(
        lambda: _http_ok(url, process), timeout=START_DEADLINE_S, interval=0.1, what=f"{process.name} {url}"
    )


def wait_exit(process: Process, *, timeout: float = START_DEADLINE_S) -> None:
    """Wait for a one-shot command to finish; it must succeed."""
    try:
        code = process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{process.name} did not finish in {timeout}s:\n{process.output()}") from exc
    if code != 0:
        raise RuntimeError(f"{process.name} failed with {code}:\n{process.output()}")
