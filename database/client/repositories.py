"""Queries of the client database: clients, their job index, uploads, access log. Never commits."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database.client.models import AccessLog, Client, ClientJob, Upload


def create_client(
    session: Session, *, client_id: str, name: str, description: str, secret_hash: str, scopes: list[str]
) -> Client:
    client = Client(id=client_id, name=name, description=description, secret_hash=secret_hash, scopes=scopes)
    session.add(client)
    session.flush()
    return client


def get_client(session: Session, client_id: str) -> Client | None:
    return session.get(Client, client_id)


def get_client_by_name(session: Session, name: str) -> Client | None:
    return session.scalar(select(Client).where(Client.name == name))


def list_clients(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[list[Client], int]:
    total = session.scalar(select(func.count()).select_from(Client)) or 0
    rows = session.scalars(select(Client).order_by(Client.created_at).limit(limit).offset(offset)).all()
    return list(rows), total


def client_names(session: Session, client_ids: Iterable[str]) -> dict[str, str]:
    """Names of the given clients in one query; unknown ids are absent."""
    wanted = set(client_ids)
    if not wanted:
        return {}
    rows = session.execute(select(Client.id, Client.name).where(Client.id.in_(wanted)))
    return dict(rows.tuples().all())


def set_client_secret(session: Session, client: Client, secret_hash: str) -> Client:
    """Store a new secret and bump the version so every token issued before dies."""
    client.secret_hash = secret_hash
    client.secret_version += 1
    session.flush()
    return client


def set_client_active(session: Session, client: Client, active: bool) -> Client:
    client.is_active = active
    client.secret_version += 1  # tokens issued before a disable stay dead after re-enabling
    session.flush()
    return client


def add_client_job(session: Session, *, job_id: str, client_id: str, task_type: str) -> ClientJob:
    row = ClientJob(job_id=job_id, client_id=client_id, task_type=task_type)
    session.add(row)
    session.flush()
    return row


def count_jobs_since(session: Session, client_id: str, since: datetime) -> int:
    query = select(func.count()).where(ClientJob.client_id == client_id, ClientJob.created_at >= since)
    return session.scalar(query) or 0


def create_upload(session: Session, **fields: Any) -> Upload:
    upload = Upload(**fields)
    session.add(upload)
    session.flush()
    return upload


def get_upload_for_client(session: Session, upload_id: str, client_id: str) -> Upload | None:
    return session.scalar(select(Upload).where(Upload.id == upload_id, Upload.client_id == client_id))


def add_access_logs(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    session.add_all(AccessLog(**row) for row in rows)
    session.flush()


def recent_access_logs(
    session: Session, *, client_id: str | None = None, limit: int = 100
) -> list[AccessLog]:
    query = select(AccessLog).order_by(AccessLog.id.desc()).limit(limit)
    if client_id is not None:
        query = query.where(AccessLog.client_id == client_id)
    return list(session.scalars(query).all())
