"""Flow `generate-image`: text-to-image (SD 1.5, SDXL) and image-to-image jobs."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.generation import RESULT_STORAGE, fail_unfinished_job, interrupt_on_node, run_generation
from flows.params import GenerationRequest


@flow(
    name="generate-image",
    on_cancellation=[interrupt_on_node],
    on_failure=[fail_unfinished_job],
    on_crashed=[fail_unfinished_job],
    log_prints=False,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
async def generate_image(job_id: str, request: GenerationRequest) -> dict[str, Any]:
    """Render the job's workflow, run it on a node of its group and store the images."""
    return await run_generation(job_id, request)
