"""Node outages are waited out: the only node killed or frozen for seconds loses no job and runs none twice; a
group with no node for longer than its `outage_wait_s` fails its jobs saying why; a graph the node rejects fails
at once, naming the node."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from tests.distribution.conftest import Fleet
from tests.fixtures.prefect_server import start_worker, wait_until
from tests.fixtures.simnode import start_simnode

pytestmark = pytest.mark.prefect

OUTAGE_S = 3.0


def _restart_on_same_port(fleet: Fleet, node: Any, **flags: Any) -> Any:
    """Start the node again where it was (same port and folders); the fleet and the stack forget the old one."""
    fresh = start_simnode(port=node.port, data_dir=node.data_dir, **flags)
    fresh.node_id = node.node_id
    fleet.stack.simnodes[fleet.stack.simnodes.index(node)] = fresh
    fleet.nodes[node.node_id] = fresh
    return fresh


def _prompts_run(fleet: Fleet, task_ids: list[str]) -> dict[str, list[str]]:
    """Per job, the prompt ids of its succeeded attempts (the runs that made its result)."""
    return {t: [a["prompt_id"] for a in fleet.admin_task(t)["attempt_list"] if a["status"] == "succeeded"]
            for t in task_ids}


def _assert_all_completed_once(fleet: Fleet, task_ids: list[str], node: Any) -> None:
    done = [fleet.wait_final(t, timeout=120) for t in task_ids]
    assert [d["status"] for d in done] == ["completed"] * len(task_ids), [(d["status"], d["error"]) for d in done]
    assert all(len(d["results"]) == 1 for d in done)
    runs = _prompts_run(fleet, task_ids)
    assert all(len(prompts) == 1 for prompts in runs.values()), runs
    executions = node.state()["executions"]  # the node as it is now: every prompt it ran, and how often
    assert all(count == 1 for count in executions.values()), executions


def test_the_only_node_killed_for_seconds_loses_no_job(fleet: Fleet) -> None:
    node = fleet.add("outage-kill", step_delay=0.05, max_concurrent=2)
    task_ids = [fleet.submit(steps=6) for _ in range(8)]
    wait_until(lambda: node.state()["running"], timeout=30, interval=0.02, what="a prompt running on the node")

    node.kill()
    # What a client reads while the node is gone: its jobs wait, and say for what.
    waiting = wait_until(lambda: (t := fleet.task(task_ids[-1]))["status_detail"] and t, timeout=30,
                         what="a queued job to say it waits for a node")
    assert waiting["status"] == "queued"
    assert waiting["status_detail"] == "waiting for a node of group default"
    time.sleep(OUTAGE_S)  # the outage itself: nothing to wait for
    failed = [(t["status"], t["error"]) for t in map(fleet.task, task_ids) if t["status"] == "failed"]
    assert not failed
    node = _restart_on_same_port(fleet, node, step_delay=0.02)

    _assert_all_completed_once(fleet, task_ids, node)


def test_the_only_node_frozen_for_seconds_runs_every_job_once(fleet: Fleet) -> None:
    node = fleet.add("outage-stop", step_delay=0.1, max_concurrent=2)
    task_ids = [fleet.submit(steps=10) for _ in range(6)]
    fleet.wait_running(task_ids[0])

    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        time.sleep(OUTAGE_S)  # the outage itself
    finally:
        os.kill(node.process.pid, signal.SIGCONT)

    _assert_all_completed_once(fleet, task_ids, node)


def test_a_group_down_longer_than_its_outage_wait_fails_its_jobs_saying_why(fleet: Fleet) -> None:
    """Group `brief` (outage_wait_s 2 in the stack's config) has no node at all."""
    worker = start_worker("brief", fleet.stack.root, concurrency=2, poll_interval=2.0)
    try:
        task_id = fleet.submit(node_group="brief", steps=2)
        done = fleet.wait_final(task_id, timeout=60)
    finally:
        worker.process.kill()
        worker.process.wait(timeout=10)
    assert done["status"] == "failed"
    assert done["error"].startswith("NoNodeAvailable: no node of group 'brief' could take the job for 2 s"), done
    assert done["attempts"] == 0


def test_a_rejected_graph_fails_at_once_with_the_nodes_message_and_name(fleet: Fleet) -> None:
    nodes = [fleet.add(f"reject-{x}", step_delay=0.01) for x in "ab"]
    for node in nodes:
        node.control(reject_all=True)
    task_id = fleet.submit(steps=2)
    done = fleet.wait_final(task_id)
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"].startswith("Prompt outputs failed validation (Simulated rejection (reject_all))"), done
    assert "(rejected by node reject-" in done["error"]
    assert sum(node.state()["prompts_received"] for node in nodes) == 1


def test_readiness_is_503_naming_the_group_while_its_only_node_is_down(fleet: Fleet) -> None:
    import asyncio

    from comfyws.config import get_config
    from workers.health import HealthMonitor

    node = fleet.add("ready-only", step_delay=0.01)
    monitor = HealthMonitor(get_config().nodes.health)  # what `comfyws monitor` runs, one round at a time

    def ready() -> tuple[int, dict[str, Any]]:
        with fleet.stack.http() as http:
            response = http.get("/health/ready")
        return response.status_code, response.json()

    asyncio.run(monitor.probe_once())
    code, body = ready()
    assert code == 200, body
    assert body["nodes"]["groups"]["default"] == 1 and body["nodes"]["usable"] == 1  # counted once

    node.kill()
    for _ in range(get_config().nodes.health.unhealthy_after):
        asyncio.run(monitor.probe_once())
    code, body = ready()
    assert code == 503
    assert body["nodes"]["groups_without_node"] == ["default"]
    assert "no healthy node in group(s) default" in body["detail"]

    node = _restart_on_same_port(fleet, node, step_delay=0.01)
    for _ in range(get_config().nodes.health.healthy_after):
        asyncio.run(monitor.probe_once())
    assert ready()[0] == 200


def test_a_node_frozen_past_the_idle_timeout_loses_its_job_and_never_finishes_it(fleet: Fleet) -> None:
    """The stack's idle timeout is 5 s: the job leaves the frozen node for the other one, and the prompt it left
    there is taken off that node as soon as it answers again, so the job's result is made once."""
    frozen = fleet.add("freeze-a", step_delay=0.1)
    spare = fleet.add("freeze-b", step_delay=0.01)
    fleet.node_action(spare.node_id, "disable")  # so the job starts on the node that will freeze
    task_id = fleet.submit(steps=60)
    fleet.wait_running(task_id, on={frozen.node_id})
    fleet.node_action(spare.node_id, "enable")

    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: fleet.task(task_id)["node_id"] == spare.node_id, timeout=60, what="the job to move")
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    done = fleet.wait_final(task_id)

    assert done["status"] == "completed", done
    first = fleet.admin_task(task_id)["attempt_list"][0]
    assert (first["node_id"], first["status"]) == (frozen.node_id, "failed")
    assert first["error"].startswith(("NodeTimeout", "NodeUnavailable")), first  # idle, or its history read timed out
    wait_until(lambda: frozen.state()["running"] is None, timeout=30, what="the frozen node's prompt stopped")
    history = frozen.state()
    assert history["succeeded"] == 0 and history["interrupted"] == 1, history
