"""The one module that starts (and cancels) flow runs: Prefect's `run_deployment` with an idempotency key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import State
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled, Cancelling

from api.errors import SchedulerUnavailable
from api.settings import get_api_settings
from deployments.names import deployment_name, queue_for_priority
from flows.params import GenerationRequest, flow_for

log = logging.getLogger(__name__)


def prefect_api_url() -> str | None:
    return get_api_settings().prefect_api_url or PREFECT_API_URL.value()


@asynccontextmanager
async def prefect_client() -> AsyncIterator[PrefectClient]:
    url = prefect_api_url()
    if not url:
        # Without a URL Prefect would start a private ephemeral server that no worker ever polls.
        raise SchedulerUnavailable("the scheduler is unavailable: PREFECT_API_URL is not set")
    async with PrefectClient(url) as client:
        yield client


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
            if attempt == retries or not _is_transient(exc):
                raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc
            log.info("Prefect busy creating run for job %s (%s); retrying", job_id, _describe(exc))
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        except ObjectNotFound as exc:
            raise SchedulerUnavailable(f"the scheduler is unavailable: no deployment {name!r}") from exc
        except (httpx.TransportError, OSError, RuntimeError) as exc:
            raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc
    raise AssertionError("unreachable")


async def _create_run(name: str, job_id: str, request: GenerationRequest) -> str:
    async with prefect_client() as client:
        flow_run = await arun_deployment(
            name,
            client=client,
            parameters={"job_id": job_id, "request": request.model_dump(mode="json")},
            timeout=0,
            idempotency_key=job_id,
            work_queue_name=queue_for_priority(request.priority),
            as_subflow=False,
            flow_run_name=f"job-{job_id}",
            tags=[f"job:{job_id}", request.task_type],
        )
    return str(flow_run.id)


async def cancel(flow_run_id: str, *, running: bool) -> None:
    """Cancelling for a run on a node (its hook interrupts the node); Cancelled for one not started yet."""
    state: State[Any] = Cancelling() if running else Cancelled(message="cancelled before it started")
    try:
        async with prefect_client() as client:
            await client.set_flow_run_state(flow_run_id, state, force=True)
    except (httpx.HTTPError, OSError, ObjectNotFound) as exc:
        raise SchedulerUnavailable(f"the scheduler is unavailable: {_describe(exc)}") from exc


def _is_transient(exc: httpx.HTTPStatusError) -> bool:
    # The SQLite-backed Prefect server answers 503 or "database is locked" under bursts.
    return exc.response.status_code in (429, 502, 503) or "database is locked" in exc.response.text


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")
