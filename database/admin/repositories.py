"""Queries of the admin database: admin users, nodes, run-time settings, audit log, samples. Never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database.admin.models import AdminUser, AuditLog, HealthCheck, Node, Setting
from database.enums import AdminRole, NodeStatus
from database.types import utcnow


def count_admin_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AdminUser)) or 0


def get_admin_user(session: Session, username: str) -> AdminUser | None:
    return session.scalar(select(AdminUser).where(AdminUser.username == username))


def list_admin_users(session: Session) -> list[AdminUser]:
    return list(session.scalars(select(AdminUser).order_by(AdminUser.id)).all())


def get_admin_user_by_id(session: Session, user_id: int) -> AdminUser | None:
    return session.get(AdminUser, user_id)


def lock_active_admin_ids(session: Session) -> list[int]:
    """Ids of the active users with the admin role, locked (on MySQL) until the caller's transaction ends, so two
    concurrent demotions cannot both see another admin left."""
    query = (
        select(AdminUser.id)
        .where(AdminUser.is_active.is_(True), AdminUser.role == AdminRole.ADMIN)
        .with_for_update()
    )
    return list(session.scalars(query).all())


def update_admin_user(
    session: Session,
    user: AdminUser,
    *,
    is_active: bool | None = None,
    role: AdminRole | None = None,
    password_hash: str | None = None,
) -> AdminUser:
    """Apply the changes and bump the token version: every token issued before any change dies."""
    if is_active is not None:
        user.is_active = is_active
    if role is not None:
        user.role = role
    if password_hash is not None:
        user.password_hash = password_hash
    user.token_version += 1
    session.flush()
    return user


def create_admin_user(session: Session, *, username: str, password_hash: str, role: AdminRole) -> AdminUser:
    user = AdminUser(username=username, password_hash=password_hash, role=role)
    session.add(user)
    session.flush()
    return user


def list_nodes(session: Session, *, group: str | None = None) -> list[Node]:
    query = select(Node).order_by(Node.group, Node.node_id)
    if group is not None:
        query = query.where(Node.group == group)
    return list(session.scalars(query).all())


def get_node(session: Session, node_id: str) -> Node | None:
    return session.get(Node, node_id)


def upsert_node(session: Session, node_id: str, **fields: Any) -> Node:
    """Insert the node or update the given fields of the existing row."""
    node = session.get(Node, node_id)
    if node is None:
        node = Node(node_id=node_id, **fields)
        session.add(node)
    else:
        for name, value in fields.items():
            setattr(node, name, value)
    session.flush()
    return node


def delete_node(session: Session, node: Node) -> None:
    session.delete(node)
    session.flush()


def touch_node(session: Session, node: Node, **fields: Any) -> Node:
    """A heartbeat: the node is alive now, with whatever it reported."""
    node.last_seen_at = utcnow()
    for name, value in fields.items():
        setattr(node, name, value)
    session.flush()
    return node


def count_usable_nodes(session: Session) -> int:
    query = select(func.count()).where(Node.enabled.is_(True), Node.status != NodeStatus.UNHEALTHY)
    return session.scalar(query) or 0


def recent_health_checks(session: Session, node_id: str, *, limit: int = 20) -> list[HealthCheck]:
    query = (
        select(HealthCheck).where(HealthCheck.node_id == node_id).order_by(HealthCheck.id.desc()).limit(limit)
    )
    return list(session.scalars(query).all())


def get_setting(session: Session, key: str) -> Any:
    row = session.get(Setting, key)
    return None if row is None else row.value


def put_setting(session: Session, key: str, value: Any, *, updated_by: str | None = None) -> Setting:
    row = session.get(Setting, key)
    if row is None:
        row = Setting(key=key, value=value, updated_by=updated_by)
        session.add(row)
    else:
        row.value = value
        row.updated_by = updated_by
    session.flush()
    return row


def add_audit(
    session: Session, *, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None
) -> AuditLog:
    row = AuditLog(actor=actor, action=action, target=target, detail=detail or {})
    session.add(row)
    session.flush()
    return row


def list_audit(session: Session, *, limit: int = 100, offset: int = 0) -> list[AuditLog]:
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query).all())
