"""Submitting, reading, listing and cancelling jobs: validation first, ledger committed before the flow run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import launcher
from api.dispatcher import Dispatcher
from api.errors import ApiError, Conflict, InvalidParameters, NotFound, SchedulerUnavailable
from api.schemas import Task, TaskPage
from api.services import quotas
from api.services import request_checks as checks
from api.services.views import task_view
from api.settings import get_api_settings
from comfyws.config import get_config
from comfyws.settings import get_settings
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName, JobStatus, Priority
from database.shared import idempotency
from database.shared import repositories as ledger
from database.shared.models import Job
from flows.params import GenerationRequest
from workers import registry
from workers.balancer import Requirements, capable, requirements_for
from workers.progress import ProgressBus, get_publisher
from workflows.catalog import Workflow, get_catalog
from workflows.errors import ParameterError, UnknownWorkflowError
from workflows.render import RenderedGraph, render
from workflows.values import ParamType

# Keys of a submit body that steer the job rather than fill the workflow.
CONTROL_KEYS = ("workflow_name", "priority", "node_group")


class _KeyTaken(Exception):
    """Another submit with the same key committed between our check and our write."""


@dataclass(frozen=True)
class IdempotencyClaim:
    """A submit's Idempotency-Key and the digest of what it asked for."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class Recorded:
    """A committed job and its flow parameters; `replay` is the first answer's status when the key was known."""

    job_id: str
    request: GenerationRequest | None
    replay: int | None = None


@dataclass(frozen=True)
class Submission:
    task_type: str
    workflow: Workflow
    params: dict[str, Any]
    priority: Priority
    node_group: str


def task_type_of(slug: str) -> str:
    """`text-to-image` in the path is the `text_to_image` task type; unknown types are 404."""
    task_type = slug.replace("-", "_")
    if task_type not in get_catalog().task_types():
        raise NotFound(f"unknown task type {slug!r}; known: {sorted(get_catalog().task_types())}")
    return task_type


async def submit(
    dispatcher: Dispatcher,
    client_id: str,
    task_type: str,
    body: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> Task:
    """Validate, write the ledger row and the client's index, commit, then have the flow run created.

    A Prefect server that cannot be reached at all fails the request (503, job marked failed); a busy one only
    delays the run: after `launch_wait_s` the answer says `pending` and the dispatcher keeps trying. With an
    Idempotency-Key, a submit the client already made (same key, same body, within 24 h) answers with that
    first job and its first status instead of creating another; the same key with another body is 422."""
    claim = None
    if idempotency_key is not None:
        claim = IdempotencyClaim(idempotency_key, checks.request_hash(task_type, body))
    recorded = await run_in_threadpool(_record, client_id, task_type, body, claim)
    if recorded.replay is not None or recorded.request is None:
        return await run_in_threadpool(_replay, recorded)
    created = dispatcher.submit(recorded.job_id, recorded.request)
    # Past the wait the job stays pending and the dispatcher owns it; a SchedulerUnavailable raised here was
    # already written to the ledger by the dispatcher.
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(created), get_api_settings().launch_wait_s)
    except SchedulerUnavailable:
        if claim is not None:
            await run_in_threadpool(_note_answer, client_id, claim.key, 503)
        raise
    return await run_in_threadpool(_view, recorded.job_id)


def request_for(job: Job) -> GenerationRequest:
    """Rebuild the flow parameters of a committed job from its ledger row (used to re-dispatch it)."""
    submission = _parse(job.task_type, _submitted_body(job))
    with session_scope(DatabaseName.CLIENT) as client_db:
        input_files = _resolve_images(client_db, job.client_id, submission)
    return _generation_request(submission, input_files)


def pending_requests() -> list[tuple[str, GenerationRequest]]:
    """Committed jobs that never got a flow run (an API stopped in between), ready to dispatch again."""
    with session_scope(DatabaseName.SHARED) as session:
        jobs, _ = ledger.list_jobs(session, status=JobStatus.PENDING, limit=10_000)
        # A batch's items get their flow runs from the batch's feeder, as capacity frees.
        waiting = [job for job in jobs if job.flow_run_id is None and job.batch_id is None]
    recovered = []
    for job in waiting:
        try:
            recovered.append((job.id, request_for(job)))
        except ApiError as exc:  # its workflow or upload is gone, or it cannot pass today's checks: say so
            with session_scope(DatabaseName.SHARED) as session:
                ledger.mark_failed(session, job.id, f"cannot be dispatched again: {exc.detail}")
    return recovered


def _record(
    client_id: str, task_type: str, body: dict[str, Any], claim: IdempotencyClaim | None
) -> Recorded:
    if claim is not None and (known := _known(client_id, claim)) is not None:
        return known
    submission = _parse(task_type, body)
    with session_scope(DatabaseName.CLIENT) as client_db:
        _check_quota(client_db, client_id)
        request, work = _complete(client_db, client_id, submission)
    job_id = str(uuid.uuid4())
    try:
        with session_scope(DatabaseName.SHARED) as shared_db:
            # The key goes in the job's transaction: a key never names a job that is not there.
            if claim is not None and not idempotency.add_key(
                shared_db, client_id=client_id, key=claim.key, request_hash=claim.request_hash, job_id=job_id
            ):
                raise _KeyTaken
            ledger.create_job(
                shared_db,
                job_id=job_id,
                client_id=client_id,
                task_type=task_type,
                workflow_name=request.workflow_name,
                params=request.params,
                priority=request.priority,
                node_group=request.node_group,
                work=work,
            )
    except (IntegrityError, _KeyTaken):
        # A concurrent submit with the same key committed first: answer with its job.
        if claim is None or (known := _known(client_id, claim)) is None:
            raise
        return known
    with session_scope(DatabaseName.CLIENT) as client_db:
        client_repo.add_client_job(client_db, job_id=job_id, client_id=client_id, task_type=task_type)
    return Recorded(job_id, request)


def prepare(
    client_db: Session, client_id: str, task_type: str, body: dict[str, Any]
) -> tuple[GenerationRequest, int]:
    """Every check of a submit but the quota, before anything is written: the flow parameters and the job's
    size in sampler steps. Raises the 4xx the submit would answer (batches report it per item)."""
    return _complete(client_db, client_id, _parse(task_type, body))


def _generation_request(submission: Submission, input_files: dict[str, str]) -> GenerationRequest:
    """The flow parameters of a checked submission: built here only, for a new job and a re-dispatched one."""
    return GenerationRequest(
        task_type=submission.task_type,
        workflow_name=submission.workflow.name,
        params=submission.params,
        input_files=input_files,
        node_group=submission.node_group,
        priority=submission.priority,
    )


def _complete(client_db: Session, client_id: str, submission: Submission) -> tuple[GenerationRequest, int]:
    input_files = _resolve_images(client_db, client_id, submission)
    rendered = _validate_values(submission, input_files)
    requirements = requirements_for(rendered.graph, submission.task_type)
    _check_placeable(submission, requirements)
    request = _generation_request(submission, input_files)
    checks.check_request_size(request)  # a job is stored only once the scheduler would take it
    return request, int(requirements.work)


def _known(client_id: str, claim: IdempotencyClaim) -> Recorded | None:
    """The job an earlier submit with this key created, or None; the key with another request is 422."""
    with session_scope(DatabaseName.SHARED) as session:
        row = idempotency.find_key(session, client_id, claim.key)
        if row is None:
            return None
        if row.request_hash != claim.request_hash:
            raise InvalidParameters([{
                "field": "Idempotency-Key",
                "message": "was used within 24 h for a different request; use a new key for a new job",
            }])
        return Recorded(row.job_id, None, replay=row.status_code)


def _replay(recorded: Recorded) -> Task:
    with session_scope(DatabaseName.SHARED) as session:
        job = find_job(session, recorded.job_id, client_id=None)
        if recorded.replay == 503:
            raise SchedulerUnavailable(job.error or "the scheduler is unavailable")
        return task_view(session, job)


def _note_answer(client_id: str, key: str, status_code: int) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        idempotency.set_answer_status(session, client_id, key, status_code)


def _parse(task_type: str, body: dict[str, Any]) -> Submission:
    checks.raise_for(checks.check_control_types(body))  # a list where a name belongs is a 422, not a crash
    errors: list[dict[str, str]] = []
    workflow_name = body.get("workflow_name")
    workflow: Workflow | None = None
    try:
        workflow = get_catalog().get(task_type, workflow_name)
    except UnknownWorkflowError as exc:
        errors.append({"field": "workflow_name", "message": str(exc)})
    priority = body.get("priority") or Priority.NORMAL.value
    if priority not in {p.value for p in Priority}:
        errors.append({"field": "priority", "message": f"must be one of {[p.value for p in Priority]}"})
    group = body.get("node_group") or "default"
    if group not in get_config().nodes.group_names():
        errors.append({"field": "node_group", "message": f"unknown node group {group!r}"})
    params = {k: v for k, v in body.items() if k not in CONTROL_KEYS}
    errors += checks.check_values(params)
    if workflow is not None:
        known = {p.name for p in workflow.parameters()}
        errors += [
            {"field": name, "message": f"unknown parameter; {workflow.name} takes {sorted(known)}"}
            for name in params
            if name not in known and checks.text_problem(name) is None
        ]
    if errors or workflow is None:
        raise InvalidParameters(errors)
    return Submission(task_type, workflow, params, Priority(priority), group)


def _check_quota(session: Session, client_id: str) -> None:
    quotas.check_submit(session, client_id)  # jobs per day, submits per minute, unfinished jobs at once


def _resolve_images(session: Session, client_id: str, submission: Submission) -> dict[str, str]:
    """Image parameters carry upload ids; the flow gets the stored files' paths (only the owner's uploads)."""
    files: dict[str, str] = {}
    for info in submission.workflow.parameters():
        upload_id = submission.params.get(info.name)
        if info.type is not ParamType.IMAGE or upload_id is None:
            continue
        upload = client_repo.get_upload_for_client(session, str(upload_id), client_id)
        if upload is None:
            raise InvalidParameters([{"field": info.name, "message": f"no upload with id {upload_id!r}"}])
        files[info.name] = upload.path
    return files


def _validate_values(submission: Submission, input_files: dict[str, str]) -> RenderedGraph:
    """Render once: every value is checked against its type, bounds and choices before anything is written."""
    try:
        rendered = render(submission.workflow, {**submission.params, **input_files})
    except ParameterError as exc:
        raise InvalidParameters([{"field": exc.field, "message": exc.message}]) from exc
    checks.raise_for(checks.check_rendered(submission.workflow, rendered.values))
    return rendered


def _check_placeable(submission: Submission, requirements: Requirements) -> None:
    """Refuse a job no node of its group could take (all disabled or draining, none has its checkpoint...).

    Unhealthy nodes and nodes whose inventory is not read yet count as able (both may change before the job is
    claimed), and so does a group with no node registered yet, since a node may still register."""
    group = submission.node_group
    nodes = registry.list_snapshots(group)
    if not nodes:
        return
    able, reasons = capable(nodes, requirements, ignore_health=True)
    if not able:
        why = "; ".join(f"{node_id}: {reason}" for node_id, reason in sorted(reasons.items()))
        raise Conflict(
            f"no node of group {group!r} can run workflow {submission.workflow.name!r} ({why})",
            extra={"node_group": group, "nodes": reasons},
        )


def _view(job_id: str) -> Task:
    with session_scope(DatabaseName.SHARED) as session:
        return task_view(session, find_job(session, job_id, client_id=None))


def find_job(session: Session, job_id: str, *, client_id: str | None) -> Job:
    """The job, or 404; with a client id only that client's job (another client's job does not exist)."""
    job = (
        ledger.get_job(session, job_id)
        if client_id is None
        else ledger.get_job_for_client(session, job_id, client_id)
    )
    if job is None:
        raise NotFound(f"no task {job_id}")
    return job


def get_task(session: Session, job_id: str, *, client_id: str | None) -> Task:
    return task_view(session, find_job(session, job_id, client_id=client_id))


def list_tasks(
    session: Session,
    *,
    client_id: str | None,
    status: JobStatus | None,
    task_type: str | None,
    node_id: str | None = None,
    limit: int,
    offset: int,
) -> TaskPage:
    jobs, total = ledger.list_jobs(
        session,
        client_id=client_id,
        status=status,
        task_type=task_type,
        node_id=node_id,
        limit=limit,
        offset=offset,
    )
    return TaskPage(items=[task_view(session, j) for j in jobs], total=total, limit=limit, offset=offset)


async def cancel(job_id: str, *, client_id: str | None, bus: ProgressBus | None = None) -> Task:
    """Cancel in the ledger, then tell Prefect: a job not yet on a node ends `cancelled` at once; one on a node
    reads `cancelling` until its flow stopped the prompt on the node, then `cancelled`. The owner's sockets hear
    the new state through `bus` (this API's event bus; else the workers' publisher)."""
    flow_run_id, owner, moved_to = await run_in_threadpool(_request_cancel, job_id, client_id)
    if moved_to is not None:  # neither logs more than a warning for a lost event
        event = {"type": "status", "task_id": job_id, "client_id": owner, "status": moved_to.value,
                 "cancel_requested": True}
        await (bus or get_publisher()).publish(event)
    if flow_run_id is not None and moved_to is not None:
        # Cancelling (not Cancelled) for a run on a node: the worker stops it and its hook interrupts the node.
        await launcher.cancel(flow_run_id, running=moved_to is JobStatus.CANCELLING)
    return await run_in_threadpool(_read, job_id, client_id)


def _request_cancel(job_id: str, client_id: str | None) -> tuple[str | None, str, JobStatus | None]:
    with session_scope(DatabaseName.SHARED) as session:
        job = find_job(session, job_id, client_id=client_id)
        flow_run_id, owner = job.flow_run_id, job.client_id
        # Compare-and-set in the ledger: a slot claim racing this cancel either wins (the job is then
        # `cancelling`) or finds the job cancelled and never runs it.
        return flow_run_id, owner, ledger.request_cancel(session, job_id)


def _read(job_id: str, client_id: str | None) -> Task:
    with session_scope(DatabaseName.SHARED) as session:
        return get_task(session, job_id, client_id=client_id)


def result_path(session: Session, job_id: str, index: int, *, client_id: str) -> tuple[Path, str, str]:
    """The stored file of result `index` of the client's own job: (path, content type, file name)."""
    job = find_job(session, job_id, client_id=client_id)
    row = next((r for r in job.results if r.index == index), None)
    outputs = get_settings().outputs_dir.resolve()
    path = (outputs / row.path).resolve() if row is not None else None
    if row is None or path is None or not path.is_relative_to(outputs) or not path.is_file():
        raise NotFound(f"task {job_id} has no result {index}")
    return path, row.content_type, row.filename


async def retry(dispatcher: Dispatcher, job_id: str) -> Task:
    """A new job for the same client with the same parameters (admin)."""
    job = await run_in_threadpool(_read_job, job_id)
    return await submit(dispatcher, job.client_id, job.task_type, _submitted_body(job))


def _submitted_body(job: Job) -> dict[str, Any]:
    """The request body the job was submitted with, as far as the ledger keeps it."""
    return {**job.params, "workflow_name": job.workflow_name, "priority": job.priority,
            "node_group": job.node_group}


def _read_job(job_id: str) -> Job:
    with session_scope(DatabaseName.SHARED) as session:
        return find_job(session, job_id, client_id=None)
