"""The health monitor against real simulated nodes: status changes, inventory, health history, the loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from comfyws.config import HealthConfig
from database.admin.models import HealthCheck, Node
from database.engine import session_scope
from database.enums import DatabaseName, NodeStatus
from tests.fixtures.simnode import SimNode
from tests.workers.registry_db import add_node, sqlite_registry_db  # noqa: F401 - fixture used by pytestmark
from workers import registry
from workers.balancer import NoEligibleNode, Requirements, choose_node
from workers.health import HealthMonitor, next_status

CONFIG = HealthConfig(interval_seconds=0.05, timeout_seconds=2.0, unhealthy_after=3, healthy_after=2)
CHECKPOINTS = ["sd15.safetensors", "sdxl.safetensors"]

pytestmark = pytest.mark.usefixtures("sqlite_registry_db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(node_id: str) -> Node:
    with session_scope(DatabaseName.ADMIN) as session:
        row = session.get(Node, node_id)
        assert row is not None
        return row


def _checks(node_id: str) -> list[HealthCheck]:
    with session_scope(DatabaseName.ADMIN) as session:
        stmt = select(HealthCheck).where(HealthCheck.node_id == node_id).order_by(HealthCheck.id)
        return list(session.scalars(stmt))


def _register(node_id: str, url: str) -> None:
    registry.register_node(node_id=node_id, base_url=url, group="default", max_concurrent=1, capabilities=[],
                           weight=1.0)


async def test_first_probe_marks_a_new_node_healthy_and_reads_its_inventory(
    simnode_factory: Callable[..., SimNode],
) -> None:
    simnode = simnode_factory(checkpoints=CHECKPOINTS)
    _register("sim", simnode.url)
    results = await HealthMonitor(CONFIG).probe_once()
    assert [r.ok for r in results] == [True]
    node = _node("sim")
    assert node.status == NodeStatus.HEALTHY
    assert node.checkpoints == ["sd15.safetensors", "sdxl.safetensors"]
    assert {"KSampler", "CheckpointLoaderSimple", "SaveImage"} <= set(node.node_classes)
    assert node.vram_total and node.vram_free and node.queue_depth == 0 and node.last_seen_at
    [check] = _checks("sim")
    assert check.ok and check.latency_ms is not None and check.error is None
    # The balancer now routes by what the node really has.
    [snap] = registry.list_snapshots()
    with pytest.raises(NoEligibleNode, match=r"missing checkpoint flux\.safetensors"):
        choose_node([snap], Requirements("text_to_image", checkpoints=frozenset({"flux.safetensors"})),
                    strategy="least_loaded")


async def test_killed_node_turns_unhealthy_after_n_failures_and_recovers_on_restart(
    simnode_factory: Callable[..., SimNode],
) -> None:
    simnode = simnode_factory(checkpoints=CHECKPOINTS)
    _register("sim", simnode.url)
    async with httpx.AsyncClient() as http:
        monitor = HealthMonitor(CONFIG, http=http, inventory_every=100)
        await monitor.probe_once()
        simnode.kill()
        statuses = []
        for _ in range(CONFIG.unhealthy_after):
            await monitor.probe_once()
            statuses.append(_node("sim").status)
        assert statuses == [NodeStatus.HEALTHY] * (CONFIG.unhealthy_after - 1) + [NodeStatus.UNHEALTHY]
        assert _node("sim").last_error
        assert [c.ok for c in _checks("sim")] == [True] + [False] * CONFIG.unhealthy_after
        with pytest.raises(NoEligibleNode, match="sim: unhealthy"):
            choose_node(registry.list_snapshots(), Requirements("text_to_image"), strategy="round_robin")

        await asyncio.to_thread(simnode_factory, port=simnode.port, checkpoints=["svd.safetensors"])
        await monitor.probe_once()
        assert _node("sim").status == NodeStatus.UNHEALTHY, "one answer is not enough to trust it again"
        await monitor.probe_once()
    node = _node("sim")
    assert node.status == NodeStatus.HEALTHY
    assert node.checkpoints == ["svd.safetensors"], "a node that was down is re-read: it may have changed"


async def test_unreachable_new_node_is_unhealthy_at_once_and_disabled_nodes_are_not_probed() -> None:
    _register("ghost", f"http://127.0.0.1:{_free_port()}")
    add_node("off", enabled=False, status=NodeStatus.UNKNOWN)
    results = await HealthMonitor(CONFIG).probe_once()
    assert [(r.node_id, r.ok) for r in results] == [("ghost", False)]
    assert _node("ghost").status == NodeStatus.UNHEALTHY
    assert _node("off").status == NodeStatus.UNKNOWN and _checks("off") == []


async def test_run_forever_probes_on_its_interval_until_stopped() -> None:
    _register("ghost", f"http://127.0.0.1:{_free_port()}")
    stop = asyncio.Event()
    task = asyncio.create_task(HealthMonitor(CONFIG).run_forever(stop=stop))
    deadline = time.monotonic() + 20
    while len(_checks("ghost")) < 3:
        assert time.monotonic() < deadline, "the monitor did not keep probing"
        await asyncio.sleep(0.05)  # polling the database with a deadline
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    with session_scope(DatabaseName.ADMIN) as session:
        count = session.scalar(select(func.count()).select_from(HealthCheck))
    assert count is not None and count >= 3


@pytest.mark.parametrize(
    ("current", "ok", "failures", "successes", "expected"),
    [
        (NodeStatus.UNKNOWN, True, 0, 1, NodeStatus.HEALTHY),
        (NodeStatus.UNKNOWN, False, 1, 0, NodeStatus.UNHEALTHY),
        (NodeStatus.HEALTHY, False, 2, 0, NodeStatus.HEALTHY),
        (NodeStatus.HEALTHY, False, 3, 0, NodeStatus.UNHEALTHY),
        (NodeStatus.UNHEALTHY, True, 0, 1, NodeStatus.UNHEALTHY),
        (NodeStatus.UNHEALTHY, True, 0, 2, NodeStatus.HEALTHY),
        (NodeStatus.UNHEALTHY, False, 9, 0, NodeStatus.UNHEALTHY),
    ],
)
def test_next_status(current: NodeStatus, ok: bool, failures: int, successes: int, expected: NodeStatus) -> None:
    assert next_status(current, ok=ok, failures=failures, successes=successes, config=CONFIG) == expected
