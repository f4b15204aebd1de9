"""Against a real Prefect server: a submit creates exactly one flow run on the right deployment and queue, and
cancelling a job that has not started cancels its run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from prefect.client.orchestration import get_client

from api import launcher
from api.settings import get_api_settings
from comfyws.config import get_config
from deployments.setup import ensure_infrastructure
from flows.params import GenerationRequest
from tests.api.conftest import Api

pytestmark = pytest.mark.prefect


@pytest.fixture
def api_with_prefect(api: Api, prefect_server: str) -> Iterator[Api]:
    saved = os.environ["COMFYWS_API_PREFECT_API_URL"]
    os.environ["COMFYWS_API_PREFECT_API_URL"] = prefect_server
    get_api_settings.cache_clear()
    try:
        yield api
    finally:
        os.environ["COMFYWS_API_PREFECT_API_URL"] = saved
        get_api_settings.cache_clear()


async def test_submit_creates_one_run_and_cancel_cancels_it(api_with_prefect: Api) -> None:
    api = api_with_prefect
    await ensure_infrastructure(get_config())
    _, token = api.new_client()
    async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        submitted = await http.post(
            "/api/v2/tasks/text-to-image", json={"prompt": "a fox", "priority": "high"}
        )
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()
        assert task["status"] == "queued" and task["queue_position"] is not None
        job_id = task["task_id"]

        async with get_client() as prefect:
            runs = await prefect.read_flow_runs()
            mine = [r for r in runs if r.parameters.get("job_id") == job_id]
            assert len(mine) == 1
            run = mine[0]
            assert run.work_queue_name == "high"
            assert run.parameters["request"]["task_type"] == "text_to_image"
            deployment = await prefect.read_deployment(run.deployment_id)
            assert deployment.name == "default"

            # A repeated creation (a retry after a lost answer) finds the same run: nothing runs twice.
            request = GenerationRequest.model_validate(run.parameters["request"])
            assert await launcher.launch(job_id, request) == str(run.id)

            cancelled = await http.delete(f"/api/v2/tasks/{job_id}")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            state = (await prefect.read_flow_run(run.id)).state
            assert state is not None and state.is_cancelled()
