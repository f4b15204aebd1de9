"""Batches: each valid item becomes an ordinary job through the submit checks; read, list and cancel them."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import launcher
from api.batch_schemas import Batch, BatchItemOut, BatchPage
from api.errors import ApiError, InvalidParameters, NotFound, SchedulerUnavailable
from api.services import jobs, quotas
from api.services.batch_input import Entry
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import BatchStatus, DatabaseName, JobStatus, Priority
from database.shared import batches as batch_repo
from database.shared import repositories as ledger
from database.shared.models import Batch as BatchRow
from database.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSpec:
    """What a batch asks for, whatever form it came in."""

    task_type: str
    workflow_name: str | None
    name: str | None
    defaults: dict[str, Any]
    entries: list[Entry]
    priority: Priority
    node_group: str | None
    source: str
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass
class _Valid:
    entry: Entry
    job_id: str
    workflow_name: str
    params: dict[str, Any]
    priority: Priority
    node_group: str
    work: int


async def create(client_id: str, spec: BatchSpec, *, feeder: str | None = None) -> Batch:
    """Validate every item, commit the batch and its jobs in one transaction, then start its feeder (unless
    `feeder` names the flow run that feeds it: a scheduled run feeds its own batch)."""
    batch, fresh = await run_in_threadpool(_record, client_id, spec)
    if fresh and feeder is not None:
        await run_in_threadpool(_note_feeder, batch.id, feeder)
    elif fresh:
        _background(start_feeder(batch.id, batch.node_group, 1))
    return await run_in_threadpool(read, batch.id, client_id=client_id, with_items=True)


_pending: set[asyncio.Task[None]] = set()


def _background(work: Any) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _pending.add(task)  # a reference until it ends: the loop keeps only weak ones
    task.add_done_callback(_pending.discard)


async def start_feeder(batch_id: str, group: str, number: int) -> None:
    """Create the batch's feeder run; when Prefect cannot take it, the keeper tries again later."""
    try:
        run_id = await launcher.launch_batch(batch_id, group, number)
    except SchedulerUnavailable as exc:
        log.warning("batch %s: feeder not started yet (%s)", batch_id, exc.detail)
        return
    await run_in_threadpool(_note_feeder, batch_id, run_id)


def _note_feeder(batch_id: str, run_id: str) -> None:
    with session_scope(DatabaseName.SHARED) as session:
        batch_repo.feeder_alive(session, batch_id, run_id)


def _record(client_id: str, spec: BatchSpec) -> tuple[BatchRow, bool]:
    task_type = jobs.task_type_of(spec.task_type.replace("_", "-"))
    if spec.idempotency_key is not None and (known := _known(client_id, spec)) is not None:
        return known, False
    with session_scope(DatabaseName.CLIENT) as client_db:
        quotas.check_submit(client_db, client_id)  # the batch is one submit; its items count against the day
        room = _daily_room(client_db, client_id)
        valid = _validate(client_db, client_id, task_type, spec, room)
    if not valid:
        raise InvalidParameters(
            [{"field": f"items[{e.index}]", "message": e.error or "invalid"} for e in spec.entries[:20]]
        )
    batch_id = str(uuid.uuid4())
    first = valid[0]
    with session_scope(DatabaseName.SHARED) as shared_db:
        batch = batch_repo.create_batch(
            shared_db, id=batch_id, client_id=client_id, name=spec.name, task_type=task_type,
            workflow_name=first.workflow_name, node_group=first.node_group, total=len(spec.entries),
            defaults=spec.defaults, source=spec.source, idempotency_key=spec.idempotency_key,
            request_hash=spec.request_hash,
            item_errors=[_error_of(e) for e in spec.entries if e.error is not None],
        )
        for item in valid:
            ledger.create_job(
                shared_db, job_id=item.job_id, client_id=client_id, task_type=task_type,
                workflow_name=item.workflow_name, params=item.params, priority=item.priority,
                node_group=item.node_group, work=item.work, batch_id=batch_id, batch_index=item.entry.index,
            )
        batch_repo.next_feeder(shared_db, batch_id)  # the first feeder is started right after the commit
        shared_db.expunge(batch)
    with session_scope(DatabaseName.CLIENT) as client_db:
        for item in valid:
            client_repo.add_client_job(client_db, job_id=item.job_id, client_id=client_id, task_type=task_type)
    return batch, True


def _known(client_id: str, spec: BatchSpec) -> BatchRow | None:
    assert spec.idempotency_key is not None
    with session_scope(DatabaseName.SHARED) as session:
        row = batch_repo.find_by_key(session, client_id, spec.idempotency_key)
        if row is None:
            return None
        if row.request_hash != spec.request_hash:
            raise InvalidParameters([{
                "field": "Idempotency-Key",
                "message": "was used for a different batch; use a new key for a new batch",
            }])
        session.expunge(row)
        return row


def _daily_room(client_db: Session, client_id: str) -> int | None:
    client = client_repo.get_client(client_db, client_id)
    if client is None or client.daily_quota is None:
        return None
    used = client_repo.count_jobs_since(client_db, client_id, utcnow() - timedelta(days=1))
    return max(0, client.daily_quota - used)


def _validate(
    client_db: Session, client_id: str, task_type: str, spec: BatchSpec, room: int | None
) -> list[_Valid]:
    """The submit's own checks for every item; a refused item keeps its reason and does not stop the rest."""
    valid: list[_Valid] = []
    for entry in spec.entries:
        if entry.error is not None:
            continue
        body = {**spec.defaults, **entry.body}
        body.setdefault("priority", spec.priority.value)
        if spec.workflow_name is not None:
            body.setdefault("workflow_name", spec.workflow_name)
        if spec.node_group is not None:
            body.setdefault("node_group", spec.node_group)
        try:
            request, work = jobs.prepare(client_db, client_id, task_type, body)
        except ApiError as exc:
            entry.error = exc.detail
            continue
        if room is not None and len(valid) >= room:
            entry.error = "daily quota of jobs used"
            continue
        valid.append(_Valid(entry, str(uuid.uuid4()), request.workflow_name, request.params,
                            request.priority, request.node_group, work))
        entry.body = body
    return valid


def _error_of(entry: Entry) -> dict[str, Any]:
    return {"index": entry.index, "row": entry.row, "error": entry.error}


def read(batch_id: str, *, client_id: str | None, with_items: bool = False) -> Batch:
    with session_scope(DatabaseName.SHARED) as session:
        batch = find(session, batch_id, client_id)
        return view(session, batch, with_items=with_items, admin=client_id is None)


def find(session: Session, batch_id: str, client_id: str | None) -> BatchRow:
    batch = batch_repo.get_batch(session, batch_id, client_id=client_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return batch


def view(
    session: Session, batch: BatchRow, *, with_items: bool = False, admin: bool = False,
    item_counts: dict[str, int] | None = None,
) -> Batch:
    counts = item_counts if item_counts is not None else batch_repo.counts(session, [batch.id])[batch.id]
    invalid = len(batch.item_errors or [])
    ended = invalid + sum(n for s, n in counts.items() if JobStatus(s).is_final)
    status = batch_repo.final_status(batch, counts) if batch.status is BatchStatus.RUNNING else batch.status
    return Batch(
        batch_id=batch.id, name=batch.name, task_type=batch.task_type, workflow_name=batch.workflow_name,
        status=status, total=batch.total, counts={**counts, "invalid": invalid},
        progress=round(ended / batch.total, 4) if batch.total else 1.0,
        created_at=batch.created_at, finished_at=batch.finished_at,
        client_id=batch.client_id if admin else None,
        items=_items(session, batch) if with_items else None,
    )


def _items(session: Session, batch: BatchRow) -> list[BatchItemOut]:
    out = [BatchItemOut(index=e["index"], row=e.get("row"), error=e["error"]) for e in batch.item_errors or []]
    rows = {job.batch_index: job for job in batch_repo.items(session, batch.id)}
    out += [BatchItemOut(index=index, task_id=job.id, status=job.status.value) for index, job in rows.items()
            if index is not None]
    return sorted(out, key=lambda item: item.index)


def list_batches(*, client_id: str | None, limit: int, offset: int) -> BatchPage:
    with session_scope(DatabaseName.SHARED) as session:
        rows, total = batch_repo.list_batches(session, client_id=client_id, limit=limit, offset=offset)
        counts = batch_repo.counts(session, [b.id for b in rows])
        items = [view(session, b, admin=client_id is None, item_counts=counts[b.id]) for b in rows]
        return BatchPage(items=items, total=total, limit=limit, offset=offset)


async def cancel(batch_id: str, *, client_id: str | None) -> Batch:
    """The batch ends cancelled: items without a flow run are cancelled in the ledger at once, items with one
    are cancelled like single jobs (a job on a node ends once the node stopped it)."""
    with_runs = await run_in_threadpool(_cancel_in_ledger, batch_id, client_id)
    for job_id in with_runs:
        try:
            await jobs.cancel(job_id, client_id=None)
        except SchedulerUnavailable as exc:  # the ledger says cancelled: the flow ends it when it looks
            log.warning("batch %s: item %s cancelled in the ledger only (%s)", batch_id, job_id, exc.detail)
        except NotFound:
            continue
    return await run_in_threadpool(read, batch_id, client_id=client_id, with_items=False)


def _cancel_in_ledger(batch_id: str, client_id: str | None) -> list[str]:
    with session_scope(DatabaseName.SHARED) as session:
        find(session, batch_id, client_id)
        batch_repo.mark_cancelled(session, batch_id)
        unfinished = batch_repo.unfinished_ids(session, batch_id)
        for job_id, run_id in unfinished:
            if run_id is None:
                ledger.request_cancel(session, job_id)
    return [job_id for job_id, run_id in unfinished if run_id is not None]
