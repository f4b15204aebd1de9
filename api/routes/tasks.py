"""Jobs of the calling client: submit, read, list, cancel, fetch results; uploads; the workflow catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, UploadFile, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ClientSession, CurrentClient, JobDispatcher, SharedSession
from api.schemas import INT32_MAX, Task, TaskPage, UploadInfo, WorkflowCatalogOut, error_responses
from api.services import catalog, jobs, uploads
from api.settings import get_api_settings
from database.enums import JobStatus

router = APIRouter(prefix="/api/v2", tags=["tasks"], responses=error_responses(400, 401, 422, 500))

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a submit safely: the same key with the same body within 24 h returns the first job "
        "(never a second run); with another body it is 422. Printable ASCII, at most 255 characters.",
    ),
]
SubmitBody = Annotated[
    dict[str, Any],
    Body(
        description="Workflow parameters (see GET /api/v2/workflows) plus workflow_name, priority, node_group",
        examples=[{"prompt": "a lighthouse at dusk", "width": 512, "height": 512, "priority": "normal"}],
    ),
]


@router.post(
    "/tasks/{task_kind}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Task,
    responses=error_responses(404, 409, 413, 429, 503),
)
async def submit(
    task_kind: str,
    body: SubmitBody,
    client: CurrentClient,
    dispatcher: JobDispatcher,
    idempotency_key: IdempotencyKey = None,
) -> Task:
    """Submit a job of a task type (text-to-image, text-to-image-sdxl, image-to-video, image-to-image, ...)."""
    return await jobs.submit(
        dispatcher, client.id, jobs.task_type_of(task_kind), body, idempotency_key=idempotency_key
    )


@router.get("/tasks", response_model=TaskPage)
def list_tasks(
    client: CurrentClient,
    session: SharedSession,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    task_type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> TaskPage:
    """The client's jobs, newest first."""
    return jobs.list_tasks(
        session, client_id=client.id, status=status_, task_type=task_type, limit=limit, offset=offset
    )


@router.get("/tasks/{task_id}", response_model=Task, responses=error_responses(404))
def get_task(task_id: str, client: CurrentClient, session: SharedSession) -> Task:
    """One of the client's jobs."""
    return jobs.get_task(session, task_id, client_id=client.id)


@router.delete("/tasks/{task_id}", response_model=Task, responses=error_responses(404, 503))
async def cancel_task(task_id: str, client: CurrentClient, request: Request) -> Task:
    """Cancel a job; a job on a node is `cancelling` until the node stopped it, then `cancelled`."""
    return await jobs.cancel(task_id, client_id=client.id, bus=request.app.state.bus)


@router.get(
    "/tasks/{task_id}/results/{index}",
    response_class=FileResponse,
    responses={
        200: {"description": "The file", "content": {"image/png": {}, "application/octet-stream": {}}},
        **error_responses(404),
    },
)
def get_result(
    task_id: str, index: Annotated[int, Path(ge=0, le=INT32_MAX)], client: CurrentClient, session: SharedSession
) -> FileResponse:
    """A result file of one of the client's jobs."""
    path, content_type, filename = jobs.result_path(session, task_id, index, client_id=client.id)
    return FileResponse(path, media_type=content_type, filename=filename)


@router.post(
    "/upload/image",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadInfo,
    responses=error_responses(413, 415),
)
async def upload_image(file: UploadFile, client: CurrentClient, session: ClientSession) -> UploadInfo:
    """Upload an input image (PNG, JPEG, WEBP); jobs refer to it by upload_id."""
    limit = get_api_settings().max_upload_bytes
    data = await file.read(limit + 1)  # one byte more than allowed tells an oversized file apart
    return await run_in_threadpool(
        uploads.store_image, session, client_id=client.id, filename=file.filename or "upload", data=data
    )


@router.get("/workflows", response_model=WorkflowCatalogOut)
def workflows() -> WorkflowCatalogOut:
    """Task types, their workflows and each workflow's parameters."""
    return catalog.describe()
