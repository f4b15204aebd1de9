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


def test_prefect_yaml_defines_one_template_deployment_per_generation_flow() -> None:
    specs = read_deployment_specs(PREFECT_YAML)
    assert sorted(s.entrypoint for s in specs) == [
        "flows/generate_image.py:generate_image",
        "flows/generate_video.py:generate_video",
    ]
    assert all(
        s.work_pool.name == "comfyui-default" and s.work_pool.work_queue_name == "normal" for s in specs
    )
