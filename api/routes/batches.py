"""Batches of the calling client: submit (JSON, sweep or a CSV/JSONL file), list, read, cancel, results.zip."""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.batch_schemas import Batch, BatchPage, BatchRequest
from api.deps import AdminUser, CurrentClient
from api.errors import InvalidParameters, NotFound, Unauthorized
from api.routes.tasks import IdempotencyKey
from api.schemas import INT32_MAX, error_responses
from api.services import batch_input, batch_results, batches
from api.services import request_checks as checks
from api.services.jobs import task_type_of
from api.settings import get_api_settings
from comfyws.secret_store import internal_token
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName, Priority
from workers.progress import INTERNAL_TOKEN_HEADER
from workflows.catalog import get_catalog
from workflows.errors import UnknownWorkflowError

router = APIRouter(prefix="/api/v2", tags=["batches"], responses=error_responses(400, 401, 422, 500))
admin_router = APIRouter(prefix="/api/v2/admin", tags=["admin"], responses=error_responses(401, 403, 422, 500))
internal_router = APIRouter(include_in_schema=False)


@router.post(
    "/batches", status_code=status.HTTP_202_ACCEPTED, response_model=Batch,
    responses=error_responses(404, 413, 429),
)
async def submit_batch(body: BatchRequest, client: CurrentClient, idempotency_key: IdempotencyKey = None) -> Batch:
    """Submit a batch: items and/or a sweep over defaults; each valid item becomes a job, each invalid one is
    reported by index."""
    entries = batch_input.from_json(body.items, body.sweep)
    spec = batches.BatchSpec(
        task_type=body.task_type, workflow_name=body.workflow_name, name=body.name, defaults=body.defaults,
        entries=entries, priority=body.priority, node_group=body.node_group,
        source="sweep" if body.sweep and not body.items else "json", idempotency_key=idempotency_key,
        request_hash=checks.request_hash("batch", body.model_dump(mode="json")) if idempotency_key else None,
    )
    return await batches.create(client.id, spec)


@router.post(
    "/batches/upload", status_code=status.HTTP_202_ACCEPTED, response_model=Batch,
    responses=error_responses(404, 413, 429),
)
async def upload_batch(
    client: CurrentClient,
    file: UploadFile,
    task_type: Annotated[str, Form(max_length=64)],
    workflow_name: Annotated[str | None, Form(max_length=128)] = None,
    name: Annotated[str | None, Form(max_length=255)] = None,
    defaults: Annotated[str, Form(description="JSON object of parameters every row starts from")] = "{}",
    priority: Annotated[Priority, Form()] = Priority.LOW,
    node_group: Annotated[str | None, Form(max_length=64)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Batch:
    """Submit a batch as a CSV (header = parameter names) or JSONL file: one item per row, bad rows reported by
    row number."""
    limit = get_api_settings().max_upload_bytes
    data = await file.read(limit + 1)
    batch_input.check_file_size(len(data), limit)
    base = _defaults(defaults)
    workflow = _workflow(task_type, workflow_name)
    filename = file.filename or "batch.csv"
    entries = await run_in_threadpool(batch_input.from_file, filename, data, workflow, base)
    spec = batches.BatchSpec(
        task_type=task_type, workflow_name=workflow_name, name=name or filename, defaults=base, entries=entries,
        priority=priority, node_group=node_group, source="jsonl" if filename.endswith("l") else "csv",
        idempotency_key=idempotency_key,
        request_hash=checks.request_hash("batch-file", {"data": data.hex(), "task_type": task_type,
                                                        "defaults": base}) if idempotency_key else None,
    )
    return await batches.create(client.id, spec)


def _defaults(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidParameters([{"field": "defaults", "message": "must be a JSON object"}])
    return value


def _workflow(task_type: str, workflow_name: str | None) -> Any:
    try:
        return get_catalog().get(task_type_of(task_type.replace("_", "-")), workflow_name)
    except UnknownWorkflowError as exc:
        raise InvalidParameters([{"field": "workflow_name", "message": str(exc)}]) from exc


@router.get("/batches", response_model=BatchPage)
def list_batches(
    client: CurrentClient,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> BatchPage:
    """The client's batches, newest first, with counts per job state."""
    return batches.list_batches(client_id=client.id, limit=limit, offset=offset)


@router.get("/batches/{batch_id}", response_model=Batch, responses=error_responses(404))
def get_batch(batch_id: str, client: CurrentClient) -> Batch:
    """One of the client's batches with every item (task id and status, or why it was refused)."""
    return batches.read(batch_id, client_id=client.id, with_items=True)


@router.delete("/batches/{batch_id}", response_model=Batch, responses=error_responses(404))
async def cancel_batch(batch_id: str, client: CurrentClient) -> Batch:
    """Cancel what has not finished; the batch ends `cancelled`."""
    return await batches.cancel(batch_id, client_id=client.id)


@router.get(
    "/batches/{batch_id}/results.zip",
    response_class=StreamingResponse,
    responses={200: {"description": "zip", "content": {"application/zip": {}}}, **error_responses(404)},
)
async def batch_results_zip(batch_id: str, client: CurrentClient) -> StreamingResponse:
    """Every finished item's files named by index, and manifest.json (parameters, seeds, errors)."""
    archive = await run_in_threadpool(batch_results.collect, batch_id, client_id=client.id)
    return StreamingResponse(
        batch_results.stream(archive), media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{archive.name}"'},
    )


@admin_router.get("/batches", response_model=BatchPage)
def admin_list_batches(
    _admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> BatchPage:
    """Every client's batches with their owner and counts."""
    return batches.list_batches(client_id=None, limit=limit, offset=offset)


@admin_router.post("/batches/{batch_id}/cancel", response_model=Batch, responses=error_responses(404))
async def admin_cancel_batch(batch_id: str, _admin: AdminUser) -> Batch:
    """Cancel any client's batch."""
    return await batches.cancel(batch_id, client_id=None)


class ScheduledBatch(BatchRequest):
    """A batch a scheduled flow run creates for a named client; that run feeds it itself."""

    client: str = Field(max_length=255, description="Owning client: its id or its name")
    feeder_flow_run_id: str | None = Field(None, max_length=64)


@internal_router.post("/internal/batches", status_code=status.HTTP_202_ACCEPTED, response_model=Batch)
async def internal_batch(
    body: ScheduledBatch, token: Annotated[str | None, Header(alias=INTERNAL_TOKEN_HEADER)] = None
) -> Batch:
    """Scheduled batch deployments create their ledger batch here (internal token), owned by the named client."""
    if token is None or not hmac.compare_digest(token.encode(), internal_token().encode()):
        raise Unauthorized("internal token required")
    client_id = await run_in_threadpool(_client_named, body.client)
    spec = batches.BatchSpec(
        task_type=body.task_type, workflow_name=body.workflow_name, name=body.name, defaults=body.defaults,
        entries=batch_input.from_json(body.items, body.sweep), priority=body.priority, node_group=body.node_group,
        source="schedule",
    )
    return await batches.create(client_id, spec, feeder=body.feeder_flow_run_id)


def _client_named(name: str) -> str:
    with session_scope(DatabaseName.CLIENT) as session:
        client = client_repo.get_client(session, name) or client_repo.get_client_by_name(session, name)
        if client is None or not client.is_active:
            raise NotFound(f"no active client {name!r}")
        return client.id
