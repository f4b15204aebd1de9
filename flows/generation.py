"""The body every generation flow shares: prepare -> run on a node -> store results -> finish, and its hooks."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

from prefect import Flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.settings import get_current_settings
from prefect.states import State

from comfyws.config import get_config
from comfyws.settings import get_settings
from database.enums import AttemptStatus, JobStatus
from flows import ledger
from flows.models import StoredResult
from flows.node_run import STOP_TIMEOUT_S, JobFailed, JobStopped, node_snapshot, stop_prompt
from flows.params import GenerationRequest
from flows.reporting import publish
from flows.settings import get_flow_settings
from flows.tasks import finish_job, prepare_job, run_on_node, store_results
from workers.comfyui.client import ComfyUIClient

# Named explicitly: without it the engine asks the server for its default result storage on every run, a
# blocking HTTP call on the worker's event loop (~50 ms, all runs stall). Results are not persisted anyway.
RESULT_STORAGE = Path(get_current_settings().results.local_storage_path)


async def run_generation(job_id: str, request: GenerationRequest) -> dict[str, Any]:
    """Run one job to a final state in the ledger; returns a small summary for the Prefect UI."""
    prepared = await prepare_job(job_id, request)
    if prepared is None:
        await _cancel_on_node(job_id)  # a job left `cancelling` by a run that died ends cancelled now
        return {"job_id": job_id, "skipped": "job already final"}
    try:
        node_run = await run_on_node(job_id, request, prepared)
        results = await store_results(job_id, node_run,
                                      outage_wait_s=get_config().nodes.group(request.node_group).outage_wait_s)
    except JobStopped:
        await _settle_stopped(job_id, prepared.client_id)
        return {"job_id": job_id, "skipped": "cancelled before it ran"}
    except Exception as exc:
        await _fail(job_id, prepared.client_id, exc)
        raise
    await finish_job(job_id, prepared.client_id, results)
    await _publish_artifact(job_id, request, node_run.node_id, results)
    return {"job_id": job_id, "node_id": node_run.node_id, "files": [r.path for r in results]}


async def _fail(job_id: str, client_id: str, exc: BaseException) -> None:
    """End the job failed: the node's own verdict first (JobFailed says it as is), then every attempt's error."""
    history = await ledger.attempt_errors(job_id)
    message = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
    if history:
        message += " | " + " | ".join(history)
    ended = await ledger.finish(job_id, JobStatus.FAILED, error=message)
    if ended is not None:
        error = message if ended is JobStatus.FAILED else None
        await publish(job_id, client_id, "status", status=ended.value, error=error)


async def _settle_stopped(job_id: str, client_id: str) -> None:
    """The job was cancelled before its prompt reached a node: a cancel that found it `cancelling` ends now."""
    if await ledger.finish(job_id, JobStatus.CANCELLED) is not None:
        await publish(job_id, client_id, "status", status=JobStatus.CANCELLED.value)


async def _publish_artifact(
    job_id: str, request: GenerationRequest, node_id: str, results: list[StoredResult]
) -> None:
    """A Prefect artifact showing what was made: links and a small preview of each image."""
    api = get_settings().api_url.rstrip("/")
    lines = [f"### Job `{job_id}` ({request.task_type} / {request.workflow_name}) on `{node_id}`", ""]
    for r in results:
        lines.append(f"- [{r.filename}]({api}/api/v2/tasks/{job_id}/results/{r.index}) "
                     f"{r.kind}, {r.size} bytes, sha256 `{r.sha256[:16]}...`")
        thumb = await asyncio.to_thread(_thumbnail, r)
        if thumb:
            lines.append(f"  ![{r.filename}](data:image/jpeg;base64,{thumb})")
    try:
        await acreate_markdown_artifact(
            key=f"job-{job_id}", markdown="\n".join(lines), description=f"Results of job {job_id}"
        )
    except Exception:  # noqa: BLE001 - the artifact is for operators; the job is already done
        get_run_logger().warning("could not publish the result artifact of job %s", job_id, exc_info=True)


def _thumbnail(result: StoredResult) -> str | None:
    from PIL import Image

    size = get_flow_settings().artifact_thumbnail_px
    try:
        with Image.open(get_settings().outputs_dir / result.path) as img:
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=70)
    except Exception:  # noqa: BLE001 - a file Pillow cannot read simply gets no preview
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


async def fail_unfinished_job(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_failure / on_crashed hook: whatever went wrong, the job's ledger row ends final and its owner hears."""
    job_id = str(flow_run.parameters.get("job_id", ""))
    job = await ledger.load_job(job_id)
    if job is not None and not JobStatus(job.status).is_final:
        await _fail(job_id, job.client_id, RuntimeError(state.message or "the flow run failed"))


async def interrupt_on_node(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_cancellation hook: stop the job's prompt on its node and end the job cancelled."""
    await _cancel_on_node(str(flow_run.parameters.get("job_id", "")))


async def _cancel_on_node(job_id: str) -> None:
    """Stop the prompt of the job's open attempt on its node, then end the job cancelled (a job that is not being
    cancelled, or already final, is left as it is)."""
    job = await ledger.load_job(job_id)
    if job is None or JobStatus(job.status).is_final:
        return
    attempt = await ledger.running_attempt(job_id)
    if attempt is not None:
        node = await node_snapshot(attempt.node_id)
        if node is not None:
            async with ComfyUIClient(node.base_url, timeout=STOP_TIMEOUT_S) as client:
                await stop_prompt(client, attempt.prompt_id)  # one that does not answer: the monitor stops it
        await ledger.finish_attempt(attempt.id, AttemptStatus.CANCELLED, error="cancelled")
    if await ledger.finish(job_id, JobStatus.CANCELLED) is not None:
        await publish(job_id, job.client_id, "status", status=JobStatus.CANCELLED.value)
