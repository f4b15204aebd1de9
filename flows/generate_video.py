"""Flow `generate-video`: image-to-video jobs (SVD)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.generation import RESULT_STORAGE, fail_unfinished_job, interrupt_on_node, run_generation
from flows.params import GenerationRequest


@flow(
    name="generate-video",
    on_cancellation=[interrupt_on_node],
    on_failure=[fail_unfinished_job],
    on_crashed=[fail_unfinished_job],
    log_prints=False,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
async def generate_video(job_id: str, request: GenerationRequest) -> dict[str, Any]:
    """Upload the job's input image to a node, run the video workflow and store the animation."""
    return await run_generation(job_id, request)
