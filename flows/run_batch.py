"""Flow `run-batch`: feeds a batch's items to the generation flows as capacity frees (bounded look-ahead).

Each item is already a job in the ledger; the feeder creates its flow run (a child of this run in the Prefect UI)
only while fewer than the look-ahead of the batch's items are in flight, so a 5,000-item batch never makes 5,000
runs at once and interactive jobs keep their place. Run from a schedule with a spec file, it first creates the
batch in the ledger (owned by the spec's client, through the API) and afterwards copies the results to a dated
folder. Every item's run is created with the job id as its idempotency key: a feeder that died and its successor
never start an item twice.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import FlowRunContext
from prefect.deployments.flow_runs import arun_deployment

from comfyws.config import get_config
from comfyws.secret_store import internal_token
from comfyws.settings import PROJECT_ROOT, get_settings
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import BatchStatus, DatabaseName
from database.shared import batches as batch_repo
from database.shared import repositories as ledger
from database.shared.models import Job
from flows.params import GenerationRequest, flow_for
from workers import registry
from workers.progress import INTERNAL_TOKEN_HEADER
from workflows.catalog import get_catalog
from workflows.values import ParamType

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the feeder looks for freed capacity
JOB_TAG = "job:"  # deployments.names.JOB_TAG_PREFIX: such runs start from their Scheduled event at once


@dataclass(frozen=True)
class Round:
    """What one look at the ledger found: the items to start now, or that the batch is over."""

    over: bool
    to_start: list[tuple[str, GenerationRequest]]


@flow(name="run-batch", log_prints=False, persist_result=False)
async def run_batch(
    batch_id: str | None = None,
    spec: str | None = None,
    output_dir: str | None = None,
    retention_days: int | None = None,
) -> dict[str, Any]:
    """Feed a batch's items to the generation flows; with `spec` (a YAML batch file), create that batch first."""
    started = time.monotonic()
    run_id = _own_run_id()
    if batch_id is None:
        if spec is None:
            raise ValueError("run-batch needs a batch_id or a spec file")
        batch_id = await create_from_spec(spec, run_id)
    await feed(batch_id, run_id)
    status = await asyncio.to_thread(_settle, batch_id)
    copied = None
    if output_dir is not None:
        copied = await asyncio.to_thread(export_results, batch_id, output_dir, retention_days)
    await summarise(batch_id, status, time.monotonic() - started, copied)
    return {"batch_id": batch_id, "status": status.value, "output_dir": str(copied) if copied else None}


def _own_run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


async def feed(batch_id: str, run_id: str | None) -> None:
    """Start items while fewer than the look-ahead are in flight, until every item has ended or the batch is
    cancelled. A round that fails (Prefect or the database away) is tried again; the heartbeat keeps the API
    from starting a second feeder meanwhile."""
    logger = get_run_logger()
    failures = 0
    while True:
        try:
            batch_round = await asyncio.to_thread(_look, batch_id, run_id)
            if batch_round.over:
                return
            for job_id, request in batch_round.to_start:
                await _start_item(job_id, request)
            failures = 0
        except Exception as exc:  # noqa: BLE001 - the feeder outlives a restart of Prefect or the database
            failures += 1
            logger.warning("batch %s: feeding round failed (%s: %s); trying again", batch_id,
                           type(exc).__name__, exc)
            await asyncio.sleep(min(POLL_S * 2**failures, 10.0))
            continue
        await asyncio.sleep(POLL_S)


def lookahead(group: str) -> int:
    """Item runs a batch keeps at once: its group's node slots plus a few, within the configured ceiling."""
    settings = get_config().batches
    slots = sum(n.max_concurrent for n in registry.list_snapshots(group) if n.enabled and not n.draining)
    return max(1, min(settings.max_in_flight, slots + settings.lookahead))


def _look(batch_id: str, run_id: str | None) -> Round:
    with session_scope(DatabaseName.SHARED) as session:
        batch = batch_repo.get_batch(session, batch_id)
        if batch is None or batch.status is not BatchStatus.RUNNING:
            return Round(True, [])
        batch_repo.feeder_alive(session, batch_id, run_id if batch.flow_run_id != run_id else None)
        counts = batch_repo.counts(session, [batch_id])[batch_id]
        if batch_repo.final_status(batch, counts) is not BatchStatus.RUNNING:
            return Round(True, [])
        free = lookahead(batch.node_group) - batch_repo.in_flight(session, batch_id)
        items = batch_repo.unfed(session, batch_id, free) if free > 0 else []
        return Round(False, [(job.id, _request_of(job)) for job in items])


def _request_of(job: Job) -> GenerationRequest:
    """The flow parameters of a committed item, as the API builds them for a single job."""
    workflow = get_catalog().get(job.task_type, job.workflow_name)
    files: dict[str, str] = {}
    with session_scope(DatabaseName.CLIENT) as client_db:
        for info in workflow.parameters():
            upload_id = job.params.get(info.name)
            if info.type is ParamType.IMAGE and upload_id is not None:
                upload = client_repo.get_upload_for_client(client_db, str(upload_id), job.client_id)
                if upload is not None:
                    files[info.name] = upload.path
    return GenerationRequest(task_type=job.task_type, workflow_name=job.workflow_name, params=job.params,
                             input_files=files, node_group=job.node_group, priority=job.priority)


async def _start_item(job_id: str, request: GenerationRequest) -> None:
    """The item's generation run, as a child of this run; the job id keys it, so it is made once at most."""
    run = await arun_deployment(
        f"{flow_for(request.task_type)}/{request.node_group}",
        parameters={"job_id": job_id, "request": request.model_dump(mode="json")},
        timeout=0,
        as_subflow=True,
        idempotency_key=job_id,
        work_queue_name=request.priority.value,
        flow_run_name=f"job-{job_id}",
        tags=[f"{JOB_TAG}{job_id}", request.task_type, "batch"],
    )
    await asyncio.to_thread(_mark_queued, job_id, str(run.id))


def _mark_queued(job_id: str, run_id: str) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        ledger.mark_queued(session, job_id, run_id)


def _settle(batch_id: str) -> BatchStatus:
    with session_scope(DatabaseName.SHARED) as session:
        return batch_repo.settle(session, batch_id)


async def create_from_spec(spec_path: str, run_id: str | None) -> str:
    """Create the spec's batch in the ledger through the API (same checks as any batch), fed by this run."""
    body = load_spec(spec_path)
    body["feeder_flow_run_id"] = run_id
    async with httpx.AsyncClient(base_url=get_settings().api_url, timeout=120.0) as client:
        response = await client.post(
            "/internal/batches", json=body, headers={INTERNAL_TOKEN_HEADER: internal_token()}
        )
    if response.status_code != 202:
        raise RuntimeError(f"the API refused the batch of {spec_path}: {response.status_code} {response.text}")
    batch = response.json()
    get_run_logger().info("batch %s created from %s: %s items, %s invalid", batch["batch_id"], spec_path,
                          batch["total"], batch["counts"].get("invalid", 0))
    return str(batch["batch_id"])


def load_spec(spec_path: str) -> dict[str, Any]:
    """A batch spec file (YAML): client, task_type, workflow_name?, name?, defaults, items | csv | sweep, priority?,
    node_group?. A relative `csv` path is read beside the spec file."""
    path = Path(spec_path)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{spec_path}: a batch spec is a mapping")
    csv_path = raw.pop("csv", None)
    if csv_path is not None:
        source = Path(csv_path) if Path(csv_path).is_absolute() else path.parent / csv_path
        with source.open(encoding="utf-8-sig", newline="") as handle:
            rows = [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
        raw["items"] = [*(raw.get("items") or []), *rows]
    raw.setdefault("name", f"{path.stem} {datetime.now(UTC):%Y-%m-%d %H:%M}")
    return raw


def export_results(batch_id: str, pattern: str, retention_days: int | None) -> Path:
    """Copy the finished items' files to the dated folder (`{date}` in the pattern); drop folders beside it
    that are older than the retention."""
    outputs = get_settings().outputs_dir.resolve()
    target = Path(pattern.format(date=datetime.now(UTC).strftime("%Y-%m-%d"), batch_id=batch_id))
    target = target if target.is_absolute() else outputs / target
    target.mkdir(parents=True, exist_ok=True)
    manifest = []
    with session_scope(DatabaseName.SHARED) as session:
        for job in batch_repo.items(session, batch_id):
            names = []
            for result in job.results:
                source = (outputs / result.path).resolve()
                if source.is_relative_to(outputs) and source.is_file():
                    name = f"{job.batch_index:05d}_{result.index}{source.suffix}"
                    shutil.copyfile(source, target / name)
                    names.append(name)
            manifest.append({"index": job.batch_index, "task_id": job.id, "status": job.status.value,
                             "params": job.params, "seed": job.seed, "error": job.error, "files": names})
    (target / "manifest.json").write_text(json.dumps({"batch_id": batch_id, "items": manifest}, indent=2))
    if retention_days is not None:
        _prune(target, retention_days)
    return target


def _prune(target: Path, retention_days: int) -> None:
    cutoff = time.time() - timedelta(days=retention_days).total_seconds()
    for sibling in target.parent.iterdir():
        if sibling != target and sibling.is_dir() and sibling.stat().st_mtime < cutoff:
            shutil.rmtree(sibling, ignore_errors=True)


@task(name="summarise-batch")
async def summarise(batch_id: str, status: BatchStatus, seconds: float, copied: Path | None) -> None:
    """A markdown artifact on the run: counts, failures with reasons, links to the results, duration."""
    text = await asyncio.to_thread(_summary_markdown, batch_id, status, seconds, copied)
    await acreate_markdown_artifact(key=f"batch-{batch_id}", markdown=text, description=f"batch {batch_id}")


def _summary_markdown(batch_id: str, status: BatchStatus, seconds: float, copied: Path | None) -> str:
    api = get_settings().api_url.rstrip("/")
    with session_scope(DatabaseName.SHARED) as session:
        batch = batch_repo.get_batch(session, batch_id)
        counts = batch_repo.counts(session, [batch_id])[batch_id]
        items = batch_repo.items(session, batch_id)
        errors = list(batch.item_errors or []) if batch else []
        failures = [(j.batch_index, j.status.value, j.error) for j in items if j.status.value != "completed"]
        links = [(j.batch_index, r.filename, f"{api}/api/v2/tasks/{j.id}/results/{r.index}")
                 for j in items for r in j.results][:50]
    lines = [f"# Batch {batch.name if batch and batch.name else batch_id}", "",
             f"**{status.value}** in {seconds:.1f} s; batch `{batch_id}`", "", "| state | items |", "|---|---|"]
    lines += [f"| {state} | {n} |" for state, n in sorted(counts.items())]
    lines += [f"| invalid | {len(errors)} |", ""]
    if errors or failures:
        lines += ["## Failures", "", "| item | state | reason |", "|---|---|---|"]
        lines += [f"| {e['index']} | invalid | {e['error']} |" for e in errors[:50]]
        lines += [f"| {index} | {state} | {error or ''} |" for index, state, error in failures[:50]]
        lines.append("")
    if links:
        lines += ["## Results", ""] + [f"- item {index}: [{name}]({url})" for index, name, url in links]
    if copied is not None:
        lines += ["", f"Files copied to `{copied}`."]
    return "\n".join(lines)
