"""`comfyws run` is a supervisor: a crashed child comes back, a stop signal stops everything in order and leaves
no process and no port behind, whether it comes in a terminal, to a background start, or during start-up.

Each test starts `comfyws run` as a real subprocess on free ports with its own data dir. Starts are slow on a
busy machine, so one full start serves the crash checks and the SIGTERM check (the SIGTERM test ends it, so it
comes after them in this file), and the other signals come during start-up."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.comfyws.service import (
    RunningService,
    listening_addresses,
    port_free,
    start_service,
    still_alive,
)
from tests.fixtures.prefect_server import wait_until

STOP_DEADLINE_S = 90.0  # workers' grace with time to spare on 2 busy cores
GRACE_S = 10.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_service(tmp_path_factory.mktemp("run"), f"--grace={GRACE_S:g}")
    try:
        running.wait_phase("running")
        yield running
    finally:
        running.kill_everything()


def _assert_all_gone(service: RunningService, processes: dict[int, int]) -> None:
    wait_until(lambda: not still_alive(processes), timeout=STOP_DEADLINE_S, interval=0.2,
               what=f"every process of the service to exit (left: {still_alive(processes)})")
    busy = [name for name, port in service.ports.items() if not port_free(port)]
    assert busy == [], f"ports still held: {busy}"


def _ledger_status(service: RunningService, task_id: str) -> str:
    with sqlite3.connect(service.root / "data" / "shared.db") as db:
        row = db.execute("SELECT status FROM jobs WHERE id = ?", (task_id,)).fetchone()
    return str(row[0])


def test_the_api_and_front_ends_listen_on_loopback_unless_told(service: RunningService) -> None:
    for name in ("api", "client", "admin"):
        assert listening_addresses(service.ports[name]) == {"127.0.0.1"}, name
    assert "comfyws run --host 0.0.0.0" in service.output()  # the banner says how to expose it


@pytest.mark.parametrize("name", ["worker-default-0", "monitor", "simnode"])
def test_a_killed_child_is_back_within_10s_and_jobs_complete(service: RunningService, name: str) -> None:
    token = service.client_token()
    before = service.child(name)
    os.kill(before["pid"], signal.SIGKILL)
    killed_at = time.monotonic()

    wait_until(lambda: (now := service.child(name))["pid"] != before["pid"] and now["state"] == "up",
               timeout=10.0, interval=0.1, what=f"{name} to be restarted")
    back_after = time.monotonic() - killed_at
    after = service.child(name)
    assert (after["restarts"], after["last_exit"]) == (before["restarts"] + 1, -signal.SIGKILL)
    assert f"{name} (pid {before['pid']}) exited with -9" in service.output(), "the crash is logged"
    assert back_after < 10.0

    wait_until(lambda: service.node_status("simnode-1") == "healthy", timeout=30.0, interval=0.2,
               what="the simulated node to be healthy again")
    task = service.submit(token, steps=4)
    assert service.wait_final(token, task) == "completed"


def test_sigterm_lets_running_jobs_finish_or_hands_them_back_and_leaves_nothing(service: RunningService) -> None:
    token = service.client_token()
    short = service.submit(token, steps=40)  # ~2 s on the simulated node: done within the grace
    wait_until(lambda: service.task_status(token, short) == "running", timeout=60.0, interval=0.1,
               what="the short job to run")
    httpx.post(f"http://127.0.0.1:{service.ports['simnode']}/sim/control", json={"hang_next": 1}).raise_for_status()
    long = service.submit(token, steps=4)  # stalls on the node: handed back when the grace is over
    wait_until(lambda: service.task_status(token, long) == "running", timeout=60.0, interval=0.1,
               what="the stalled job to run")
    processes = service.processes()

    service.process.send_signal(signal.SIGTERM)

    assert service.process.wait(timeout=STOP_DEADLINE_S) == 0
    _assert_all_gone(service, processes)
    assert _ledger_status(service, short) == "completed", "the worker's grace let the short job finish"
    assert _ledger_status(service, long) not in ("completed", "failed", "cancelled"), \
        "the long job is handed back (it runs at the next start), not failed"
    output = service.output()
    assert re.search(r"worker-default-0 still busy after \d+s; asking it to hand its runs back", output), \
        output[-3000:]
    assert output.index("stopping api") < output.index("stopping worker-default-0") \
        < output.index("stopping prefect-server"), "the API stops first, the Prefect server last"


def _child_state(service: RunningService, name: str) -> str | None:
    return next((c["state"] for c in service.state().get("children", []) if c["name"] == name), None)


def test_sigint_stops_a_background_start(tmp_path: Path) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored; `comfyws run` takes it anyway.
    It comes while the workers, monitor and API are starting (the full stop order is the SIGTERM test's)."""
    service = start_service(tmp_path, background=True)
    try:
        wait_until(lambda: _child_state(service, "simnode") == "up", timeout=240.0, interval=0.1,
                   what="the simulated node to be up")
        processes = service.processes()
        os.kill(service.supervisor_pid(), signal.SIGINT)
        _assert_all_gone(service, processes)
        assert "Stopped during start-up." in service.output() or "SIGINT received" in service.output()
    finally:
        service.kill_everything()


def test_sighup_during_start_up_stops_what_started(tmp_path: Path) -> None:
    service = start_service(tmp_path)
    try:
        wait_until(lambda: _child_state(service, "prefect-server") is not None, timeout=60.0, interval=0.05,
                   what="the Prefect server to be started")
        processes = service.processes()
        os.kill(service.supervisor_pid(), signal.SIGHUP)
        assert service.process.wait(timeout=STOP_DEADLINE_S) == 0
        _assert_all_gone(service, processes)
        assert "Stopped during start-up." in service.output()
    finally:
        service.kill_everything()


def test_children_do_not_outlive_a_sigkilled_supervisor(tmp_path: Path) -> None:
    """The kernel sends each child SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    service = start_service(tmp_path)
    try:
        wait_until(lambda: _child_state(service, "prefect-server") is not None, timeout=60.0, interval=0.05,
                   what="the Prefect server to be started")
        processes = service.processes()
        assert len(processes) >= 2, "the supervisor and its first child"
        os.kill(service.supervisor_pid(), signal.SIGKILL)
        _assert_all_gone(service, processes)
    finally:
        service.kill_everything()
