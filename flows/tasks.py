"""The tasks of a generation flow: prepare the job, run it on a node, store what it made, finish the job."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from comfyws.settings import get_settings
from database.enums import JobStatus
from flows import ledger
from flows.models import ImageInput, NodeRun, PreparedJob, StoredResult
from flows.node_run import run_on_some_node
from flows.params import GenerationRequest
from flows.reporting import publish
from workers.comfyui.client import ComfyUIClient
from workers.comfyui.errors import NodeUnavailable
from workers.comfyui.outputs import FileRef
from workflows.catalog import get_catalog
from workflows.render import render

RESULT_RETRY_S = 0.5  # between downloads from a node that went down after the run


class JobGone(Exception):
    """The job is no longer in the ledger."""


@task(name="prepare-job", cache_policy=NO_CACHE)
async def prepare_job(job_id: str, request: GenerationRequest) -> PreparedJob | None:
    """Render the job's graph; None when the job is already final (this flow run is a repeat)."""
    job = await ledger.load_job(job_id)
    if job is None:
        raise JobGone(f"job {job_id} is not in the ledger")
    if JobStatus(job.status).is_final:
        return None
    if job.status is JobStatus.CANCELLING:
        return None  # cancelled while an earlier run of this flow had it on a node: the run's hook ends it
    workflow = get_catalog().get(request.task_type, request.workflow_name)
    params = dict(request.params)
    if job.values:  # a repeat renders the same values, so the seed drawn the first time stays
        params = {k: v for k, v in job.values.items() if k in workflow.mapping}
    rendered = render(workflow, params)
    if not job.values:
        await ledger.record_values(job_id, rendered.values, rendered.seed)
    images = [
        ImageInput(
            parameter=name,
            local_path=request.input_files[name],
            targets=[(t.node_id, t.input_name) for t in workflow.parameter(name).targets()],
        )
        for name in rendered.input_images
        if name in request.input_files
    ]
    return PreparedJob(
        client_id=job.client_id,
        graph=rendered.graph,
        seed=rendered.seed,
        images=images,
        output_kind=workflow.output_kind,
        workflow_name=workflow.name,
    )


@task(name="run-on-node", cache_policy=NO_CACHE)
async def run_on_node(job_id: str, request: GenerationRequest, prepared: PreparedJob) -> NodeRun:
    """Pick a node, submit and follow the prompt; a node that is down or hangs is left for another node, or
    waited for (flows/node_run.py says when a job gives up)."""
    return await run_on_some_node(job_id, request, prepared)


@task(name="store-results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
async def store_results(job_id: str, run: NodeRun, *, outage_wait_s: float = 0.0) -> list[StoredResult]:
    """Download every output of the run under outputs/<job>/ and record it once, with its checksum; a node that
    went down after the run is waited for (its files are on its disk) up to `outage_wait_s`."""
    outputs_dir = get_settings().outputs_dir
    job_dir = outputs_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    stored: list[StoredResult] = []
    async with ComfyUIClient(run.base_url) as client:
        for index, ref in enumerate(run.files):
            data = await _view_when_back(client, ref, outage_wait_s)
            animated = run.animated[index] if index < len(run.animated) else False
            stored.append(
                await asyncio.to_thread(_write_result, job_dir, index, ref.filename, data, animated, outputs_dir)
            )
    for result in stored:
        await ledger.add_result(job_id, node_id=run.node_id, **result.model_dump())
    return stored


async def _view_when_back(client: ComfyUIClient, ref: FileRef, wait_s: float) -> bytes:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await client.view(ref)
        except NodeUnavailable:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(RESULT_RETRY_S)


def _write_result(
    job_dir: Path, index: int, filename: str, data: bytes, animated: bool, outputs_dir: Path
) -> StoredResult:
    name = f"{index:02d}-{Path(filename).name}"
    target = job_dir / name
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)  # a reader never sees half a file
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StoredResult(
        index=index,
        filename=name,
        path=str(target.relative_to(outputs_dir)),
        kind="video" if animated or content_type.startswith("video/") else "image",
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


@task(name="finish-job", cache_policy=NO_CACHE)
async def finish_job(job_id: str, client_id: str, results: list[StoredResult]) -> bool:
    """Mark the job completed and tell its owner; False when it was already final."""
    ended = await ledger.finish(job_id, JobStatus.COMPLETED)
    if ended is JobStatus.COMPLETED:
        await publish(job_id, client_id, "status", status=JobStatus.COMPLETED.value, progress=1.0,
                      results=[r.model_dump() for r in results])
    elif ended is not None:  # it was being cancelled: cancelled it is
        await publish(job_id, client_id, "status", status=ended.value)
    return ended is JobStatus.COMPLETED
