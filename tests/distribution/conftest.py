"""A fleet of simulated nodes of its own for each end-to-end test, on the shared stack.

The session stack's nodes are disabled while a test runs (so jobs land only on the test's nodes) and restored
afterwards with the admin API; the test's nodes are stopped and unregistered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import FINAL, Stack, stack_environment


@dataclass
class Fleet:
    """The test's own nodes plus helpers to read jobs the way a client or an operator sees them."""

    stack: Stack
    token: str
    nodes: dict[str, Any] = field(default_factory=dict)  # SimNode plus the node_id the stack gives it

    def add(self, node_id: str, **flags: Any) -> Any:
        node = self.stack.add_simnode(node_id, **flags)
        self.nodes[node_id] = node
        return node

    def node_action(self, node_id: str, action: str) -> None:
        """drain / undrain / disable / enable through the admin API."""
        with self.stack.http(self.stack.admin_token()) as http:
            response = http.post(f"/api/v2/admin/nodes/{node_id}/{action}")
        assert response.status_code == 200, response.text

    submitted: list[str] = field(default_factory=list)

    def submit(self, task_type: str = "text-to-image", **body: Any) -> str:
        body.setdefault("prompt", "distribution test")
        task_id = str(self.stack.submit(self.token, task_type, body)["task_id"])
        self.submitted.append(task_id)
        return task_id

    def cancel_leftovers(self) -> None:
        """Jobs of a failed test would wait for a node (outages are waited out) and run on the next test's."""
        with self.stack.http(self.token) as http:
            for task_id in self.submitted:
                if http.get(f"/api/v2/tasks/{task_id}").json().get("status") not in FINAL:
                    http.delete(f"/api/v2/tasks/{task_id}")

    def task(self, task_id: str) -> dict[str, Any]:
        return self.stack.task(self.token, task_id)

    def admin_task(self, task_id: str) -> dict[str, Any]:
        """The operator's view: the job with every attempt (node, prompt, status, error)."""
        with self.stack.http(self.stack.admin_token()) as http:
            response = http.get(f"/api/v2/admin/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_final(self, task_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
        return self.stack.wait_final(self.token, task_id, timeout=timeout)

    def wait_running(self, task_id: str, *, on: set[str] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the job runs (on one of `on`, when given) and its node reported a sampler step."""

        def running() -> dict[str, Any] | None:
            task = self.task(task_id)
            assert task["status"] not in ("completed", "failed", "cancelled"), task
            ok = task["status"] == "running" and (on is None or task["node_id"] in on)
            return task if ok and (task["current_step"] or 0) >= 1 else None

        return wait_until(running, timeout=timeout, interval=0.05, what=f"task {task_id} running")  # type: ignore[no-any-return]


@pytest.fixture
def fleet(stack: Stack) -> Iterator[Fleet]:
    # In-process reads of the registry and ledger, and workers started here, must use the stack's settings.
    with stack_environment(stack):
        yield from _fleet(stack)


def _fleet(stack: Stack) -> Iterator[Fleet]:
    from workers import registry

    fleet = Fleet(stack=stack, token=stack.new_client_token())
    before = registry.list_snapshots()
    for node in before:
        if node.enabled:
            fleet.node_action(node.node_id, "disable")
    try:
        yield fleet
    finally:
        fleet.cancel_leftovers()
        for node in list(fleet.nodes.values()):
            stack.remove_simnode(node)
        for node in before:
            fleet.node_action(node.node_id, "enable" if node.enabled else "disable")
            fleet.node_action(node.node_id, "drain" if node.draining else "undrain")
