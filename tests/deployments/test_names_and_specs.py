"""Deployment names and the project's prefect.yaml (no server needed)."""

from __future__ import annotations

from deployments.names import QUEUES, deployment_name, group_of_pool, pool_name, queue_for_priority
from deployments.setup import PREFECT_YAML, read_deployment_specs


def test_names_follow_the_pool_and_deployment_conventions() -> None:
    assert pool_name("default") == "comfyui-default"
    assert group_of_pool("comfyui-gpu-a") == "gpu-a"
    assert deployment_name("generate-image", "default") == "generate-image/default"
    assert [queue_for_priority(p) for p in ("high", "normal", "low")] == ["high", "normal", "low"]
    assert sorted(QUEUES, key=QUEUES.__getitem__) == ["high", "normal", "low"]


def test_prefect_yaml_defines_one_template_deployment_per_flow() -> None:
    """Each generation flow on the normal queue; the batch feeder on the high queue, so a batch's own run never
    waits behind its items."""
    specs = {s.entrypoint: s for s in read_deployment_specs(PREFECT_YAML)}
    queues = {entrypoint: s.work_pool.work_queue_name for entrypoint, s in specs.items()}
    assert queues == {
        "flows/generate_image.py:generate_image": "normal",
        "flows/generate_video.py:generate_video": "normal",
        "flows/run_batch.py:run_batch": "high",
    }
    assert all(s.work_pool.name == "comfyui-default" for s in specs.values())
