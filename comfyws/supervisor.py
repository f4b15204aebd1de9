"""Child processes of `comfyws run`: start each, wait until it answers, stop them all in reverse order."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger("comfyws.run")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Supervisor:
    """Owns every process `comfyws run` started; stopping it stops them all."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], *, extra_env: dict[str, str] | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        handle = log_path.open("ab")
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env={**self.env, **(extra_env or {})},
            start_new_session=True,
        )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def start_comfyws(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Child:
        return self.start(name, [sys.executable, "-m", "comfyws", *args], extra_env=extra_env)

    def wait_http(self, child: Child, url: str, *, timeout: float = 90.0) -> None:
        """Wait until `url` answers 2xx; a child that exits first fails start-up with its log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{self.tail(child)}")
            try:
                if httpx.get(url, timeout=2.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{child.name} did not answer {url} within {timeout:.0f}s:\n{self.tail(child)}")

    def tail(self, child: Child, lines: int = 30) -> str:
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self, *, grace: float = 15.0) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
