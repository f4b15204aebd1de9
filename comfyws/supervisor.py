"""Child processes of `comfyws run`: start each and wait until it answers, restart a crashed one with backoff,
stop them all in order on SIGTERM/SIGINT/SIGHUP, and keep `run.json` (who runs under which pid) up to date."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import httpx

from comfyws.stop_signals import StopSignals

log = logging.getLogger("comfyws.run")

# Backoff between restarts of a child that keeps crashing: 1 s, 2 s, 4 s ... capped; a child that stayed up
# this long before it died starts again from 1 s.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0
# What a child that is not a worker gets between SIGTERM and SIGKILL, and a worker after its second SIGTERM.
STOP_TIMEOUT_S = 10.0
_TICK_S = 0.5


class StopTier(IntEnum):
    """Stop order: the API and front ends first (no new work comes in), workers next, the scheduler last."""

    FRONT = 0
    WORKERS = 1
    MONITOR = 2
    NODES = 3
    SCHEDULER = 4


class ChildState(StrEnum):
    STARTING = "starting"
    UP = "up"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class StartupFailed(RuntimeError):
    """A child exited or never answered while `comfyws run` was starting."""


class StopRequested(RuntimeError):
    """A stop signal arrived while `comfyws run` was starting."""


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child, when it counts as up, and where it sits in the stop order."""

    name: str
    args: list[str]
    tier: StopTier
    ready_url: str | None = None  # answers 2xx once the child is up; None: up once started
    ready_timeout: float = 90.0
    on_ready: Callable[[], None] | None = None  # run each time it comes up (e.g. register a node)


@dataclass
class Child:
    spec: ChildSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    state: ChildState = ChildState.STOPPED
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0  # crashes in a row, for the backoff
    restart_at: float = 0.0
    last_exit: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def backoff_delay(failures: int) -> float:
    """Seconds before restart number `failures` of a child crashing in a row: exponential, capped."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** max(0, failures - 1))


def _signal_group(child: Child, sig: signal.Signals) -> None:
    # Each child leads its own session and process group, so this reaches whatever it started too.
    if child.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)


def _probe(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).is_success
    except httpx.HTTPError:
        return False


@dataclass
class Supervisor:
    """Owns every process `comfyws run` started; stopping it stops them all."""

    log_dir: Path
    state_path: Path | None = None  # run.json
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)
    signals: StopSignals = field(default_factory=StopSignals)
    info: dict[str, Any] = field(default_factory=dict)  # extra facts for run.json (ports, host)
    stop_timeout: float = STOP_TIMEOUT_S
    phase: str = "starting"

    # ----- starting -----

    def add(self, spec: ChildSpec) -> Child:
        """Start a child and wait until it is up; during start-up, a failure stops start-up."""
        child = Child(spec, self.log_dir / f"{spec.name}.log")
        self.children.append(child)
        self._launch(child)
        deadline = time.monotonic() + spec.ready_timeout
        while child.state is ChildState.STARTING:
            if self.signals.requested:
                raise StopRequested(f"stop requested while {spec.name} was starting")
            if not child.alive:
                raise StartupFailed(f"{spec.name} exited with {child.process and child.process.returncode}:\n"
                                    f"{self.tail(child)}")
            if time.monotonic() > deadline:
                raise StartupFailed(f"{spec.name} did not answer {spec.ready_url} within "
                                    f"{spec.ready_timeout:.0f}s:\n{self.tail(child)}")
            if not self._check_ready(child):
                self.signals.wait(0.25)
        return child

    def _launch(self, child: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as handle:
            child.process = subprocess.Popen(
                [sys.executable, "-m", "comfyws.lifeline", str(os.getpid()), *child.spec.args],
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )
        child.state, child.started_at = ChildState.STARTING, time.monotonic()
        self.write_state()

    def _check_ready(self, child: Child) -> bool:
        if child.spec.ready_url is not None and not _probe(child.spec.ready_url):
            return False
        return self._mark_up(child)

    def _mark_up(self, child: Child) -> bool:
        if child.spec.on_ready is not None:
            try:
                child.spec.on_ready()
            except Exception:  # e.g. the database busy: the next check tries again
                log.warning("%s answers, but its start-up step failed; retrying", child.name, exc_info=True)
                return False
        child.state = ChildState.UP
        if child.restarts:
            log.warning("%s is back (pid %s, restart %d)", child.name, child.process and child.process.pid,
                        child.restarts)
        self.write_state()
        return True

    # ----- running -----

    def supervise(self) -> None:
        """Keep every child up until a stop signal arrives."""
        self.phase = "running"
        self.write_state()
        while not self.signals.requested:
            self.poll()
            self.signals.wait(_TICK_S)

    def poll(self) -> None:
        """One round: notice crashes, restart children whose backoff is over, check restarted ones are up."""
        now = time.monotonic()
        for child in self.children:
            if child.state in (ChildState.STARTING, ChildState.UP) and not child.alive:
                self._crashed(child, now)
            elif child.state is ChildState.BACKOFF and now >= child.restart_at:
                child.restarts += 1
                try:
                    self._launch(child)
                except OSError as exc:  # no fork, no log file: try again later rather than stop the service
                    child.failures += 1
                    child.restart_at = now + backoff_delay(child.failures)
                    log.error("could not restart %s: %s; next try in %.0fs", child.name, exc,
                              child.restart_at - now)
            elif (child.state is ChildState.STARTING and not self._check_ready(child)
                  and now - child.started_at > child.spec.ready_timeout):
                log.error("%s did not answer %s within %.0fs; restarting it", child.name,
                          child.spec.ready_url, child.spec.ready_timeout)
                _signal_group(child, signal.SIGKILL)

    def _crashed(self, child: Child, now: float) -> None:
        assert child.process is not None
        child.last_exit = child.process.returncode
        _signal_group(child, signal.SIGKILL)  # whatever it started goes with it
        child.failures = 1 if now - child.started_at >= STABLE_AFTER_S else child.failures + 1
        delay = backoff_delay(child.failures)
        child.state, child.restart_at = ChildState.BACKOFF, now + delay
        log.error("%s (pid %s) exited with %s after %.0fs; restart %d in %.0fs. Last lines of %s:\n%s",
                  child.name, child.process.pid, child.last_exit, now - child.started_at, child.restarts + 1,
                  delay, child.log_path, self.tail(child))
        self.write_state()

    def tail(self, child: Child, lines: int = 30) -> str:
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ----- stopping -----

    def stop_all(self, *, grace: float) -> None:
        """Stop tier by tier; workers get `grace` seconds to finish their runs, then hand the rest back."""
        self.phase = "stopping"
        self.write_state()
        for tier in sorted({child.spec.tier for child in self.children}):
            members = [c for c in self.children if c.spec.tier == tier]
            if tier is StopTier.WORKERS:
                self._stop_group(members, first_wait=grace, then=signal.SIGTERM)
            else:
                self._stop_group(members, first_wait=self.stop_timeout, then=None)
        self.phase = "stopped"
        self.write_state()

    def _stop_group(self, members: list[Child], *, first_wait: float, then: signal.Signals | None) -> None:
        """SIGTERM, wait; optionally a second signal (a worker hands its runs back), wait; then SIGKILL."""
        for child in members:
            if child.alive:
                log.info("stopping %s (pid %s)", child.name, child.process and child.process.pid)
            _signal_group(child, signal.SIGTERM)
            _signal_group(child, signal.SIGCONT)  # a frozen child (SIGSTOP) gets to handle it
        began = time.monotonic()
        exited = self._wait_exit(members, first_wait, stop_early=lambda: self.signals.count > 1)
        if then is not None and not exited:
            for child in members:
                if child.alive:
                    log.warning("%s still busy after %.0fs; asking it to hand its runs back", child.name,
                                time.monotonic() - began)
                    _signal_group(child, then)
            self._wait_exit(members, self.stop_timeout)
        for child in members:
            if child.alive:
                log.warning("%s did not stop; killing it", child.name)
            _signal_group(child, signal.SIGKILL)  # also sweeps anything it left in its group
            if child.process is not None:
                child.process.wait()
            child.state = ChildState.STOPPED
        self.write_state()

    @staticmethod
    def _wait_exit(members: list[Child], seconds: float, *, stop_early: Callable[[], bool] | None = None) -> bool:
        """Wait until every member exited (True), the deadline passed or stop_early() says so (False)."""
        deadline = time.monotonic() + seconds
        while any(child.alive for child in members):
            if time.monotonic() > deadline or (stop_early is not None and stop_early()):
                return False
            time.sleep(0.1)
        return True

    # ----- run.json -----

    def write_state(self) -> None:
        """Who runs under which pid, for operators and tests; replaced atomically."""
        if self.state_path is None:
            return
        body = {
            "pid": os.getpid(),
            "phase": self.phase,
            **self.info,
            "children": [
                {"name": c.name, "pid": c.process.pid if c.process else None, "state": c.state.value,
                 "restarts": c.restarts, "last_exit": c.last_exit, "log": str(c.log_path)}
                for c in self.children
            ],
        }
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        os.replace(temporary, self.state_path)
