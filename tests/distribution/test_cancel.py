"""Cancelling a job wherever it is: waiting for a slot, queued in ComfyUI, running. Each ends `cancelled`, a job
on a node reads `cancelling` until the node stopped its prompt, and nothing of it runs on the node afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.distribution.conftest import Fleet
from tests.fixtures.prefect_server import wait_until

pytestmark = pytest.mark.prefect


def _cancel(fleet: Fleet, task_id: str) -> dict[str, Any]:
    with fleet.stack.http(fleet.token) as http:
        response = http.delete(f"/api/v2/tasks/{task_id}")
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def _prompts(fleet: Fleet, task_id: str) -> list[str]:
    return [a["prompt_id"] for a in fleet.admin_task(task_id)["attempt_list"]]


def _statuses(socket: Any, *, until: str, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == "status":
            yield message
            if message["status"] == until:
                return
    raise AssertionError(f"no {until!r} status within {timeout} s")


def _never_ran_after(node: Any, prompts: list[str]) -> None:
    """None of `prompts` is on the node, and none ran to the end there."""
    state = node.state()
    assert state["running"] not in prompts and not set(state["pending"]) & set(prompts), state
    history = httpx.get(f"{node.url}/history", timeout=5).json()
    assert not [p for p in prompts if p in history and history[p]["status"]["status_str"] == "success"], history


def test_a_job_cancelled_while_waiting_for_a_slot_is_never_claimed(fleet: Fleet) -> None:
    node = fleet.add("cancel-slot", step_delay=0.05, max_concurrent=1)
    node.control(hang_next=1)
    busy = fleet.submit(steps=50)
    fleet.wait_running(busy)
    waiting = fleet.submit(steps=2)
    wait_until(lambda: fleet.task(waiting)["status"] == "queued", timeout=30, what="the second job queued")

    answer = _cancel(fleet, waiting)
    assert answer["status"] == "cancelled"  # not on a node: cancelled at once
    assert _cancel(fleet, busy)["status"] == "cancelling"  # frees the slot the cancelled job could have taken
    assert fleet.wait_final(busy)["status"] == "cancelled"

    later = fleet.submit(steps=2)  # the slot is free again: the next job runs, the cancelled one never does
    assert fleet.wait_final(later)["status"] == "completed"
    done = fleet.task(waiting)
    assert (done["status"], done["attempts"], done["node_id"]) == ("cancelled", 0, None)
    assert node.state()["executions"].keys() == {*_prompts(fleet, busy), *_prompts(fleet, later)}


def test_a_job_cancelled_while_queued_in_comfyui_never_runs(fleet: Fleet) -> None:
    node = fleet.add("cancel-queue", step_delay=0.05, max_concurrent=2)
    node.control(hang_next=1)
    first = fleet.submit(steps=50)
    fleet.wait_running(first)
    second = fleet.submit(steps=4)
    wait_until(lambda: node.state()["pending"], timeout=30, what="the second prompt in the node's queue")
    prompts = _prompts(fleet, second)
    assert node.state()["pending"] == prompts

    assert _cancel(fleet, second)["status"] == "cancelling"  # on a node: until the node dropped it
    done = fleet.wait_final(second)
    assert done["status"] == "cancelled"
    _never_ran_after(node, prompts)

    _cancel(fleet, first)
    assert fleet.wait_final(first)["status"] == "cancelled"
    wait_until(lambda: node.state()["running"] is None, timeout=15, what="the node to be idle")
    _never_ran_after(node, prompts)
    assert prompts[0] not in node.state()["executions"]


def test_a_running_job_reads_cancelling_until_the_node_stopped_it(fleet: Fleet) -> None:
    node = fleet.add("cancel-run", step_delay=0.05, max_concurrent=1)
    node.control(hang_next=1)
    task_id = fleet.submit(steps=50)
    fleet.wait_running(task_id)
    prompts = _prompts(fleet, task_id)

    ws_url = fleet.stack.api_url.replace("http", "ws", 1) + f"/api/v2/ws/tasks/{task_id}?token={fleet.token}"
    with connect(ws_url) as socket:
        assert json.loads(socket.recv(timeout=10))["status"] == "running"  # the current state comes first
        answer = _cancel(fleet, task_id)
        assert (answer["status"], answer["cancel_requested"]) == ("cancelling", True)
        seen = [message["status"] for message in _statuses(socket, until="cancelled")]
    assert seen[0] == "cancelling" and seen[-1] == "cancelled", seen  # the owner's socket saw both
    done = fleet.wait_final(task_id)
    assert done["status"] == "cancelled"
    assert node.state()["running"] is None and node.state()["interrupted"] == 1  # stopped before `cancelled`
    _never_ran_after(node, prompts)
    assert fleet.admin_task(task_id)["attempt_list"][0]["status"] == "cancelled"
