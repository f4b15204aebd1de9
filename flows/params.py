"""Flow parameter models: a job id plus this small request; never ORM objects, never image bytes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from database.enums import Priority

# task type -> the flow that runs it (flow names as Prefect knows them)
FLOW_FOR_TASK_TYPE: dict[str, str] = {
    "text_to_image": "generate-image",
    "text_to_image_sdxl": "generate-image",
    "image_to_image": "generate-image",
    "image_to_video": "generate-video",
}

# The flow that feeds a batch's items to the generation flows (deployed per node group like them).
BATCH_FLOW = "run-batch"


class GenerationRequest(BaseModel):
    """What a flow run needs besides the job id; the ledger row holds the rest."""

    task_type: str = Field(description="text_to_image, text_to_image_sdxl, image_to_video, image_to_image, ...")
    workflow_name: str = Field(description="Workflow of that task type, from config.yaml")
    params: dict[str, Any] = Field(default_factory=dict, description="Client values by parameter name")
    input_files: dict[str, str] = Field(
        default_factory=dict,
        description="Image parameters: parameter name -> path of the stored upload, relative to uploads_dir",
    )
    node_group: str = Field("default", description="Node group (Prefect work pool) that runs the job")
    priority: Priority = Field(Priority.NORMAL, description="Work queue within the pool")


def flow_for(task_type: str) -> str:
    """The flow name for a task type; unknown types run as images (the catalog decides what exists)."""
    return FLOW_FOR_TASK_TYPE.get(task_type, "generate-image")
