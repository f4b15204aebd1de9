"""The one module that starts (and cancels) flow runs: a flow run from a deployment, with an idempotency key.

One kept-alive Prefect client per event loop and the deployments' ids are cached: a submit costs one request to
the Prefect server, not a new connection plus a lookup by name plus the creation.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, Settings
from prefect.states import Cancelled, Cancelling

from api.errors import RunRefused, SchedulerBusy, SchedulerUnavailable
from api.settings import get_api_settings
from deployments.names import deployment_name, job_tag, queue_for_priority
from flows.params import BATCH_FLOW, GenerationRequest, flow_for

log = logging.getLogger(__name__)


def prefect_api_url() -> str | None:
    return get_api_settings().prefect_api_url or PREFECT_API_URL.value()


# Clients are bound to the loop they were opened in; a loop that ends takes its entry with it.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, PrefectClient]] = (
    weakref.WeakKeyDictionary()
)
_deployment_ids: dict[tuple[str, str], UUID] = {}
# (settings in force, the same without client retries): building settings costs ~90 ms, so it is done once.
_no_retry: tuple[Settings, Settings] | None = None


@asynccontextmanager
async def prefect_client() -> AsyncIterator[PrefectClient]:
    """The loop's kept-alive client for the configured Prefect API (opened on first use)."""
    url = prefect_api_url()
    if not url:
        # Without a URL Prefect would start a private ephemeral server that no worker ever polls.
        raise SchedulerUnavailable("the scheduler is unavailable: PREFECT_API_URL is not set")
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        client = PrefectClient(url)
        await client.__aenter__()
        clients[url] = client
    yield client


async def aclose() -> None:
    """Close the running loop's Prefect clients (the API's shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.__aexit__(None, None, None)


async def launch(job_id: str, request: GenerationRequest) -> str:
    """Create the job's flow run and return its id; raise SchedulerUnavailable when Prefect cannot take it.

    The job id is the idempotency key, so a retry after a lost answer never creates a second run.
    """
    name = deployment_name(flow_for(request.task_type), request.node_group)
    retries = get_api_settings().prefect_retries
    for attempt in range(retries + 1):
        try:
            return await _create_run(name, job_id, request)
        except httpx.HTTPStatusError as exc:
            if _is_refusal(exc):
                raise RunRefused(f"the scheduler refused the job's run: {_describe(exc)}") from exc
            if not _is_transient(exc):
                raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc
            if attempt == retries:
                raise SchedulerBusy(f"the scheduler is busy: {_describe(exc)}") from exc
            log.info("Prefect busy creating run for job %s (%s); retrying", job_id, _describe(exc))
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        except ObjectNotFound as exc:
            raise SchedulerUnavailable(f"the scheduler is unavailable: no deployment {name!r}") from exc
        except httpx.TimeoutException as exc:
            raise SchedulerBusy(f"the scheduler is busy: {_describe(exc)}") from exc
        except (httpx.TransportError, OSError, RuntimeError) as exc:
            raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc
    raise AssertionError("unreachable")


async def _create_run(name: str, job_id: str, request: GenerationRequest) -> str:
    # Prefect's own retries back off 2 s, 4 s, 8 s... and retry a refused connection too, so they are off here:
    # a down server fails the submit at once, a busy one (503) is retried by `launch` from 0.2 s (the client
    # still pauses for the answer's Retry-After, 0.25 s from our server, before it gives up), and the dispatcher
    # keeps the job when even that is not enough.
    with _without_client_retries():
        async with prefect_client() as client:
            return await _create_run_with(client, name, job_id, request)


@contextmanager
def _without_client_retries() -> Iterator[None]:
    """Prefect's settings in force with PREFECT_CLIENT_MAX_RETRIES=0 (what `temporary_settings` does, cached)."""
    global _no_retry
    context = get_settings_context()
    if _no_retry is None or _no_retry[0] is not context.settings:
        _no_retry = (context.settings, context.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0}))
    with SettingsContext(profile=context.profile, settings=_no_retry[1]):
        yield


async def _create_run_with(client: PrefectClient, name: str, job_id: str, request: GenerationRequest) -> str:
    try:
        flow_run = await _create_from(client, await _deployment_id(client, name), job_id, request)
    except ObjectNotFound:
        # The deployment was re-created under a new id since it was cached: look it up once more.
        _deployment_ids.pop((str(client.api_url), name), None)
        flow_run = await _create_from(client, await _deployment_id(client, name), job_id, request)
    return str(flow_run.id)


async def _deployment_id(client: PrefectClient, name: str) -> UUID:
    key = (str(client.api_url), name)
    if key not in _deployment_ids:
        _deployment_ids[key] = (await client.read_deployment_by_name(name)).id
    return _deployment_ids[key]


async def _create_from(
    client: PrefectClient, deployment_id: UUID, job_id: str, request: GenerationRequest
) -> FlowRun:
    return await client.create_flow_run_from_deployment(
        deployment_id,
        parameters={"job_id": job_id, "request": request.model_dump(mode="json")},
        idempotency_key=job_id,
        work_queue_name=queue_for_priority(request.priority),
        name=f"job-{job_id}",
        tags=[job_tag(job_id), request.task_type],
    )


async def launch_batch(batch_id: str, group: str, number: int) -> str:
    """Create the flow run of a batch's feeder (`run-batch/<group>`); `number` counts the batch's feeders, so a
    retry after a lost answer returns the same run and a dead feeder's successor is a new one."""
    name = deployment_name(BATCH_FLOW, group)
    try:
        with _without_client_retries():
            async with prefect_client() as client:
                run = await client.create_flow_run_from_deployment(
                    await _deployment_id(client, name),
                    parameters={"batch_id": batch_id},
                    idempotency_key=f"batch:{batch_id}:{number}",
                    name=f"batch-{batch_id}-{number}",
                    tags=["batch", f"batch:{batch_id}"],
                )
    except ObjectNotFound as exc:
        raise SchedulerUnavailable(f"the scheduler is unavailable: no deployment {name!r}") from exc
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc
    return str(run.id)


async def cancel(flow_run_id: str, *, running: bool) -> None:
    """Cancelling for a run on a node (its hook interrupts the node); Cancelled for one not started yet."""
    state: State[Any] = Cancelling() if running else Cancelled(message="cancelled before it started")
    try:
        async with prefect_client() as client:
            await client.set_flow_run_state(flow_run_id, state, force=True)
    except (httpx.HTTPError, OSError, ObjectNotFound) as exc:
        raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc


def _is_refusal(exc: httpx.HTTPStatusError) -> bool:
    # 400, 413, 422...: Prefect read the request and said no to this run (parameters over its size limit...).
    # 401/403/404/408/409/429 say something about the server or the moment, not about the job.
    return 400 <= exc.response.status_code < 500 and exc.response.status_code not in (401, 403, 404, 408, 409, 429)


def _is_transient(exc: httpx.HTTPStatusError) -> bool:
    # The SQLite-backed Prefect server answers 503 or "database is locked" under bursts.
    return exc.response.status_code in (429, 502, 503) or "database is locked" in exc.response.text


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")
