"""Admin routes: all jobs, clients, admin users, performance, overview, migrations, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status

from api.admin_schemas import (
    AdminTask,
    AdminTaskPage,
    AdminUserCreate,
    AdminUserOut,
    AdminUserPatch,
    AuditOut,
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientPatch,
    ClientSecret,
)
from api.deps import (
    AdminSession,
    AdminUser,
    ClientSession,
    JobDispatcher,
    Revocations,
    Revoker,
    SharedSession,
)
from api.schemas import INT32_MAX, Task, error_responses
from api.security_schemas import PasswordChange
from api.services import admin as service
from api.services import jobs
from database.enums import JobStatus

router = APIRouter(prefix="/api/v2/admin", tags=["admin"], responses=error_responses(400, 401, 403, 422, 500))

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]
UserId = Annotated[int, Path(ge=1, le=INT32_MAX)]


@router.get("/tasks", response_model=AdminTaskPage)
def list_tasks(
    admin: AdminUser,
    session: SharedSession,
    client_db: ClientSession,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    task_type: str | None = None,
    client_id: str | None = None,
    node_id: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> AdminTaskPage:
    """Jobs of every client, newest first, each with its client's id and name."""
    return service.list_tasks(
        session,
        client_db,
        client_id=client_id,
        status=status_,
        task_type=task_type,
        node_id=node_id,
        limit=limit,
        offset=offset,
    )


@router.get("/tasks/{task_id}", response_model=AdminTask, responses=error_responses(404))
def get_task(task_id: str, admin: AdminUser, session: SharedSession, client_db: ClientSession) -> AdminTask:
    """One job with its owner, flow run and attempts."""
    return service.admin_task(session, client_db, task_id)


@router.post("/tasks/{task_id}/cancel", response_model=Task, responses=error_responses(404, 503))
async def cancel_task(task_id: str, admin: AdminUser, request: Request) -> Task:
    """Cancel any job."""
    task = await jobs.cancel(task_id, client_id=None, bus=request.app.state.bus)
    await service.audit_async(admin.username, "task.cancel", task_id)
    return task


@router.post(
    "/tasks/{task_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Task,
    responses=error_responses(404, 409, 413, 429, 503),
)
async def retry_task(task_id: str, admin: AdminUser, dispatcher: JobDispatcher) -> Task:
    """A new job with the same client and parameters."""
    task = await jobs.retry(dispatcher, task_id)
    await service.audit_async(admin.username, "task.retry", task_id, {"new_task_id": task.task_id})
    return task


@router.get("/clients", response_model=ClientPage)
def list_clients(
    admin: AdminUser, session: ClientSession, limit: Limit = 100, offset: Offset = 0
) -> ClientPage:
    """Registered clients."""
    return service.list_clients(session, limit=limit, offset=offset)


@router.post(
    "/clients", status_code=status.HTTP_201_CREATED, response_model=ClientSecret, responses=error_responses(409)
)
def create_client(
    body: ClientCreate, admin: AdminUser, session: ClientSession, admin_db: AdminSession
) -> ClientSecret:
    """Create a client; its secret is shown once."""
    return service.create_client(
        session,
        admin_db,
        name=body.client_name,
        description=body.description,
        quota=body.daily_quota,
        actor=admin.username,
    )


@router.post("/clients/{client_id}/disable", response_model=ClientOut, responses=error_responses(404))
def disable_client(
    client_id: str, admin: AdminUser, session: ClientSession, admin_db: AdminSession, revoker: Revoker
) -> ClientOut:
    """Disable a client: its tokens stop working and its sockets close (4401) at once."""
    revoker.revoke("client", client_id)
    return service.set_active(session, admin_db, client_id, False, actor=admin.username)


@router.post("/clients/{client_id}/enable", response_model=ClientOut, responses=error_responses(404))
def enable_client(
    client_id: str, admin: AdminUser, session: ClientSession, admin_db: AdminSession, revoker: Revoker
) -> ClientOut:
    """Enable a client again (it needs a new token)."""
    revoker.revoke("client", client_id)
    return service.set_active(session, admin_db, client_id, True, actor=admin.username)


@router.post("/clients/{client_id}/rotate", response_model=ClientSecret, responses=error_responses(404))
def rotate_client(
    client_id: str, admin: AdminUser, session: ClientSession, admin_db: AdminSession, revoker: Revoker
) -> ClientSecret:
    """A new secret for a client, shown once; old tokens stop working and its sockets close."""
    revoker.revoke("client", client_id)
    return service.rotate(session, admin_db, client_id, actor=admin.username)


@router.patch("/clients/{client_id}", response_model=ClientOut, responses=error_responses(404))
def patch_client(
    client_id: str, body: ClientPatch, admin: AdminUser, session: ClientSession, admin_db: AdminSession
) -> ClientOut:
    """Change a client's daily quota or description."""
    return service.patch_client(session, admin_db, client_id, body, actor=admin.username)


@router.get("/users", response_model=list[AdminUserOut])
def list_users(admin: AdminUser, session: AdminSession) -> list[AdminUserOut]:
    """Admin accounts."""
    return service.list_users(session)


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, response_model=AdminUserOut, responses=error_responses(409)
)
def create_user(body: AdminUserCreate, admin: AdminUser, session: AdminSession) -> AdminUserOut:
    """Create an admin account (admin role only)."""
    return service.create_user(session, body, actor=admin)


@router.post("/users/{user_id}/disable", response_model=AdminUserOut, responses=error_responses(404, 409))
def disable_user(user_id: UserId, admin: AdminUser, session: AdminSession, revoker: Revoker) -> AdminUserOut:
    """Disable an admin account: its tokens get 401 at once; the last active admin cannot be disabled (409)."""
    return _revoking(revoker, service.set_user_active(session, user_id, False, actor=admin))


@router.post("/users/{user_id}/enable", response_model=AdminUserOut, responses=error_responses(404, 409))
def enable_user(user_id: UserId, admin: AdminUser, session: AdminSession, revoker: Revoker) -> AdminUserOut:
    """Enable an admin account again (tokens from before the disable stay dead)."""
    return _revoking(revoker, service.set_user_active(session, user_id, True, actor=admin))


@router.patch("/users/{user_id}", response_model=AdminUserOut, responses=error_responses(404, 409))
def patch_user(
    user_id: UserId, body: AdminUserPatch, admin: AdminUser, session: AdminSession, revoker: Revoker
) -> AdminUserOut:
    """Change an admin account's role (its tokens die); the last active admin keeps the admin role (409)."""
    return _revoking(revoker, service.set_user_role(session, user_id, body.role, actor=admin))


@router.post("/users/{user_id}/password", response_model=AdminUserOut, responses=error_responses(404))
def set_password(
    user_id: UserId, body: PasswordChange, admin: AdminUser, session: AdminSession, revoker: Revoker
) -> AdminUserOut:
    """Set an admin account's password; its tokens die and its sockets close."""
    return _revoking(revoker, service.set_user_password(session, user_id, body.password, actor=admin))


def _revoking(revoker: Revocations, user: AdminUserOut) -> AdminUserOut:
    revoker.revoke("admin", user.username)
    return user


@router.get("/performance/nodes")
def node_performance(admin: AdminUser, session: SharedSession) -> list[dict[str, Any]]:
    """Per node: attempts, failures, mean and p95 seconds."""
    return service.node_performance(session)


@router.get("/performance/tasks")
def task_performance(admin: AdminUser, session: SharedSession) -> list[dict[str, Any]]:
    """Per task type and workflow: jobs, failures, mean and p95 seconds."""
    return service.task_performance(session)


@router.get("/overview")
def overview(
    admin: AdminUser, shared_db: SharedSession, admin_db: AdminSession, client_db: ClientSession
) -> dict[str, Any]:
    """Jobs per state, nodes by health, clients, and the last hour's throughput per minute."""
    return service.overview(shared_db, admin_db, client_db)


@router.get("/database/status")
def database_status(admin: AdminUser) -> list[dict[str, Any]]:
    """Migration status of the three databases."""
    return service.database_status()


@router.get("/audit", response_model=list[AuditOut])
def audit(admin: AdminUser, session: AdminSession, limit: Limit = 100, offset: Offset = 0) -> list[AuditOut]:
    """The admin audit log, newest first."""
    return service.audit(session, limit=limit, offset=offset)
