"""Admin work: clients and their secrets, admin users, performance, overview, migration status, audit."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.admin_schemas import (
    AdminTask,
    AdminTaskPage,
    AdminTaskRow,
    AdminUserCreate,
    AdminUserOut,
    AttemptOut,
    AuditOut,
    ClientOut,
    ClientPage,
    ClientPatch,
    ClientSecret,
)
from api.errors import Conflict, Forbidden, NotFound
from api.security import hash_secret, new_secret
from api.services.auth import register_client
from api.services.jobs import find_job
from api.services.views import task_view
from database import migrate
from database.admin import repositories as admin_repo
from database.admin.models import AdminUser
from database.client import repositories as client_repo
from database.client.models import Client
from database.engine import session_scope
from database.enums import AdminRole, DatabaseName, JobStatus, NodeStatus
from database.shared import repositories as ledger


def _client(session: Session, client_id: str) -> Client:
    client = client_repo.get_client(session, client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def list_clients(session: Session, *, limit: int, offset: int) -> ClientPage:
    clients, total = client_repo.list_clients(session, limit=limit, offset=offset)
    return ClientPage(items=[ClientOut.model_validate(c) for c in clients], total=total)


def create_client(
    client_db: Session, admin_db: Session, *, name: str, description: str, quota: int | None, actor: str
) -> ClientSecret:
    created = register_client(client_db, name=name, description=description)
    _client(client_db, created.client_id).daily_quota = quota
    admin_repo.add_audit(admin_db, actor=actor, action="client.create", target=created.client_id)
    return ClientSecret(
        client_id=created.client_id, client_name=created.client_name, client_secret=created.client_secret
    )


def set_active(
    client_db: Session, admin_db: Session, client_id: str, active: bool, *, actor: str
) -> ClientOut:
    client = client_repo.set_client_active(client_db, _client(client_db, client_id), active)
    admin_repo.add_audit(
        admin_db, actor=actor, action="client.enable" if active else "client.disable", target=client_id
    )
    return ClientOut.model_validate(client)


def rotate(client_db: Session, admin_db: Session, client_id: str, *, actor: str) -> ClientSecret:
    """A new secret, shown once; every token issued with the old one is refused from now on."""
    secret = new_secret()
    client = client_repo.set_client_secret(client_db, _client(client_db, client_id), hash_secret(secret))
    admin_repo.add_audit(admin_db, actor=actor, action="client.rotate", target=client_id)
    return ClientSecret(client_id=client.id, client_name=client.name, client_secret=secret)


def patch_client(
    client_db: Session, admin_db: Session, client_id: str, data: ClientPatch, *, actor: str
) -> ClientOut:
    client = _client(client_db, client_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(client, name, value)
    client_db.flush()
    admin_repo.add_audit(admin_db, actor=actor, action="client.update", target=client_id, detail=changes)
    return ClientOut.model_validate(client)


def list_users(session: Session) -> list[AdminUserOut]:
    return [AdminUserOut.model_validate(u) for u in admin_repo.list_admin_users(session)]


def _require_admin_role(actor: AdminUser) -> None:
    """Only admins manage accounts: an operator must not be able to make itself (or anyone) an admin."""
    if actor.role != AdminRole.ADMIN:
        raise Forbidden(f"managing admin users needs the admin role; {actor.username!r} is {actor.role}")


def _user(session: Session, user_id: int) -> AdminUser:
    user = admin_repo.get_admin_user_by_id(session, user_id)
    if user is None:
        raise NotFound(f"no admin user {user_id}")
    return user


def _keep_one_admin(session: Session, user: AdminUser, what: str) -> None:
    """Refuse a change that would leave no active admin: nobody could manage accounts any more."""
    active_admins = admin_repo.lock_active_admin_ids(session)
    if active_admins == [user.id]:
        raise Conflict(f"{user.username!r} is the last active admin and cannot be {what}; make another admin first")


def set_user_active(session: Session, user_id: int, active: bool, *, actor: AdminUser) -> AdminUserOut:
    """Disable (its tokens are refused at once) or enable an admin account."""
    _require_admin_role(actor)
    user = _user(session, user_id)
    if not active:
        _keep_one_admin(session, user, "disabled")
    admin_repo.update_admin_user(session, user, is_active=active)
    action = "admin_user.enable" if active else "admin_user.disable"
    admin_repo.add_audit(session, actor=actor.username, action=action, target=user.username)
    return AdminUserOut.model_validate(user)


def set_user_role(session: Session, user_id: int, role: AdminRole, *, actor: AdminUser) -> AdminUserOut:
    _require_admin_role(actor)
    user = _user(session, user_id)
    if role != AdminRole.ADMIN:
        _keep_one_admin(session, user, f"made {role}")
    before = AdminRole(user.role)
    admin_repo.update_admin_user(session, user, role=role)
    admin_repo.add_audit(
        session, actor=actor.username, action="admin_user.role", target=user.username,
        detail={"from": before, "to": role},
    )
    return AdminUserOut.model_validate(user)


def set_user_password(session: Session, user_id: int, password: str, *, actor: AdminUser) -> AdminUserOut:
    """A new password; the account's tokens die (the version bumps)."""
    _require_admin_role(actor)
    user = _user(session, user_id)
    admin_repo.update_admin_user(session, user, password_hash=hash_secret(password))
    admin_repo.add_audit(session, actor=actor.username, action="admin_user.password", target=user.username)
    return AdminUserOut.model_validate(user)


def create_user(session: Session, data: AdminUserCreate, *, actor: AdminUser) -> AdminUserOut:
    _require_admin_role(actor)
    if admin_repo.get_admin_user(session, data.username) is not None:
        raise Conflict(f"username: {data.username!r} is taken")
    user = admin_repo.create_admin_user(
        session, username=data.username, password_hash=hash_secret(data.password), role=data.role
    )
    admin_repo.add_audit(
        session, actor=actor.username, action="admin_user.create", target=data.username,
        detail={"role": data.role},
    )
    return AdminUserOut.model_validate(user)


def node_performance(session: Session) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) for s in ledger.node_performance(session)]


def task_performance(session: Session) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) for s in ledger.workflow_performance(session)]


def overview(shared_db: Session, admin_db: Session, client_db: Session) -> dict[str, Any]:
    nodes = admin_repo.list_nodes(admin_db)
    return {
        "jobs_by_status": {str(k): v for k, v in ledger.count_by_status(shared_db).items()},
        "nodes": {
            "total": len(nodes),
            "healthy": sum(1 for n in nodes if n.status == NodeStatus.HEALTHY),
            "unhealthy": sum(1 for n in nodes if n.status == NodeStatus.UNHEALTHY),
            "disabled": sum(1 for n in nodes if not n.enabled),
            "draining": sum(1 for n in nodes if n.draining),
        },
        "clients": client_repo.list_clients(client_db, limit=1)[1],
        "throughput": [dataclasses.asdict(p) for p in ledger.throughput(shared_db, minutes=60)],
    }


def database_status() -> list[dict[str, Any]]:
    return [dict(s) for s in migrate.status()]


def audit(session: Session, *, limit: int, offset: int) -> list[AuditOut]:
    return [AuditOut.model_validate(r) for r in admin_repo.list_audit(session, limit=limit, offset=offset)]


def list_tasks(
    shared_db: Session,
    client_db: Session,
    *,
    client_id: str | None,
    status: JobStatus | None,
    task_type: str | None,
    node_id: str | None,
    limit: int,
    offset: int,
) -> AdminTaskPage:
    """Jobs of every client, each with its client's name (one query for the whole page)."""
    jobs, total = ledger.list_jobs(
        shared_db, client_id=client_id, status=status, task_type=task_type, node_id=node_id,
        limit=limit, offset=offset,
    )
    names = client_repo.client_names(client_db, {job.client_id for job in jobs})
    items = [
        AdminTaskRow(**task_view(shared_db, job).model_dump(), client_id=job.client_id,
                     client_name=names.get(job.client_id))
        for job in jobs
    ]
    return AdminTaskPage(items=items, total=total, limit=limit, offset=offset)


def admin_task(session: Session, client_db: Session, job_id: str) -> AdminTask:
    job = find_job(session, job_id, client_id=None)
    return AdminTask(
        **task_view(session, job).model_dump(),
        client_id=job.client_id,
        client_name=client_repo.client_names(client_db, [job.client_id]).get(job.client_id),
        flow_run_id=job.flow_run_id,
        node_group=job.node_group,
        attempt_list=[AttemptOut.model_validate(a) for a in job.attempt_rows],
    )


async def audit_async(actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """An audit row from an async route (its own short transaction, off the event loop)."""

    def write() -> None:
        with session_scope(DatabaseName.ADMIN) as session:
            admin_repo.add_audit(session, actor=actor, action=action, target=target, detail=detail)

    await run_in_threadpool(write)
