"""A job no node of its group can run is refused at submit, with a 4xx that says why; nothing is recorded."""

from __future__ import annotations

import asyncio

import pytest

from comfyws.config import get_config
from tests.distribution.conftest import Fleet
from workers.health import HealthMonitor

pytestmark = pytest.mark.prefect


def _post(fleet: Fleet, task_type: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    with fleet.stack.http(fleet.token) as http:
        response = http.post(f"/api/v2/tasks/{task_type}", json=body)
    return response.status_code, response.json()


def _task_count(fleet: Fleet) -> int:
    with fleet.stack.http(fleet.token) as http:
        return int(http.get("/api/v2/tasks").json()["total"])


def test_a_workflow_whose_checkpoint_no_node_has_is_refused_at_submit(fleet: Fleet) -> None:
    fleet.add("dist-sd15-only", checkpoints=["sd15-tiny.safetensors", "svd.safetensors"])
    # One probe round reads the node's inventory (the stack's other nodes are disabled, so not probed).
    asyncio.run(HealthMonitor(get_config().nodes.health).probe_once())

    status, body = _post(fleet, "text-to-image-sdxl", {"prompt": "mountains", "steps": 2})

    assert status == 409, body
    assert body["error"] == "conflict"
    assert "dist-sd15-only: missing checkpoint sdxl-base.safetensors" in str(body["detail"])
    assert _task_count(fleet) == 0
    accepted = fleet.submit(steps=2)  # the node has the SD 1.5 checkpoint: that workflow is fine
    assert fleet.wait_final(accepted)["status"] == "completed"


def test_a_group_whose_nodes_are_all_disabled_refuses_jobs(fleet: Fleet) -> None:
    fleet.add("dist-off")
    fleet.node_action("dist-off", "disable")

    status, body = _post(fleet, "text-to-image", {"prompt": "x", "steps": 2})

    assert status == 409, body
    assert "dist-off: disabled" in str(body["detail"])
    assert body["node_group"] == "default"
    assert _task_count(fleet) == 0
