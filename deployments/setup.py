"""Idempotent Prefect set-up: one work pool per node group, its priority queues, and the deployments of prefect.yaml.

`prefect.yaml` is the one place deployments are defined. Its deployments for node group `default` are
templates: `ensure_infrastructure` applies each one to every node group in config.yaml, with the deployment
name and work pool replaced by that group's. Safe to run at every start: pools and deployments are upserted,
queues are created once and their priorities corrected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel, ConfigDict, Field

from comfyws.config import ServiceConfig
from comfyws.settings import PROJECT_ROOT
from deployments.engine import load_flow
from deployments.names import DEFAULT_QUEUE, QUEUES, WORKER_TYPE, deployment_name, pool_name
from deployments.worker import ComfyWorker

TEMPLATE_GROUP = "default"
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


class WorkPoolRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pool_name(TEMPLATE_GROUP), description="Work pool of the template group")
    work_queue_name: str = Field(DEFAULT_QUEUE, description="Queue runs go to unless the caller picks one")
    job_variables: dict[str, Any] = Field(default_factory=dict, description="Unused by the in-process worker")


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str = Field(description="Cron expression, e.g. `0 2 * * *`")
    timezone: str = Field("UTC", description="Time zone of the cron expression")
    active: bool = Field(False, description="Whether the schedule runs (toggle it in the Prefect UI)")


class DeploymentSpec(BaseModel):
    """One deployment entry of prefect.yaml (the fields this service uses)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(TEMPLATE_GROUP, description="Deployment name = node group")
    entrypoint: str = Field(description="path/to/file.py:flow_function, relative to the project root")
    description: str | None = Field(None, description="Shown in the Prefect UI")
    version: str | None = Field(None, description="Deployment version")
    tags: list[str] = Field(default_factory=list, description="Tags on every run")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Default flow parameters")
    concurrency_limit: int | None = Field(None, description="Runs of this deployment at once, all workers")
    enforce_parameter_schema: bool = Field(True, description="Reject runs whose parameters do not validate")
    work_pool: WorkPoolRef = Field(
        default_factory=lambda: WorkPoolRef(), description="Pool and default queue"
    )
    schedules: list[ScheduleSpec] = Field(default_factory=list, description="Only on named deployments")
    paused: bool = Field(False, description="Only on named deployments")


def read_deployment_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The template deployments (group `default`) of a prefect.yaml."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = [DeploymentSpec.model_validate(entry) for entry in raw.get("deployments") or []]
    return [s for s in specs if s.name == TEMPLATE_GROUP]


def read_named_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """The deployments of a prefect.yaml that are not group templates (e.g. the scheduled `nightly-batch`)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = [DeploymentSpec.model_validate(entry) for entry in raw.get("deployments") or []]
    return [s for s in specs if s.name != TEMPLATE_GROUP]


async def ensure_named_deployment(client: PrefectClient, spec: DeploymentSpec, *, project_root: Path) -> str:
    """Create a named deployment on its own pool; once it exists, what an operator changed in the Prefect UI
    (schedule on or off, cron, parameters, paused) is kept and only the code-side fields are updated."""
    flow = load_flow(spec.entrypoint, project_root=project_root)
    flow_id = await client.create_flow_from_name(flow.name)
    full_name = deployment_name(flow.name, spec.name)
    try:
        existing: DeploymentResponse | None = await client.read_deployment_by_name(full_name)
    except ObjectNotFound:
        existing = None
    if existing is not None:
        schedules = [DeploymentScheduleCreate(schedule=s.schedule, active=s.active, parameters=s.parameters,
                                              slug=s.slug) for s in existing.schedules]
        parameters, paused = existing.parameters, existing.paused
    else:
        schedules = [DeploymentScheduleCreate(schedule=CronSchedule(cron=s.cron, timezone=s.timezone),
                                              active=s.active) for s in spec.schedules]
        parameters, paused = spec.parameters, spec.paused
    await client.create_deployment(
        flow_id=flow_id, name=spec.name, version=spec.version, description=spec.description or flow.description,
        tags=spec.tags, parameters=parameters, entrypoint=spec.entrypoint, work_pool_name=spec.work_pool.name,
        work_queue_name=spec.work_pool.work_queue_name, job_variables=spec.work_pool.job_variables,
        parameter_openapi_schema=parameter_schema(flow.fn).model_dump_for_openapi(),
        enforce_parameter_schema=spec.enforce_parameter_schema, concurrency_limit=spec.concurrency_limit,
        schedules=schedules, paused=paused,
    )
    return full_name


async def ensure_work_pool(client: PrefectClient, group: str) -> None:
    """Create or update the group's pool (type comfyws-inprocess) and its high/normal/low queues."""
    pool = pool_name(group)
    await client.create_work_pool(
        WorkPoolCreate(
            name=pool,
            type=WORKER_TYPE,
            description=f"ComfyUI node group {group!r}",
            base_job_template=ComfyWorker.get_default_base_job_template(),
        ),
        overwrite=True,
    )
    for queue, priority in QUEUES.items():
        try:
            await client.create_work_queue(name=queue, priority=priority, work_pool_name=pool)
        except ObjectAlreadyExists:
            existing = await client.read_work_queue_by_name(queue, work_pool_name=pool)
            if existing.priority != priority:
                await client.update_work_queue(existing.id, priority=priority)


async def ensure_deployment(
    client: PrefectClient, spec: DeploymentSpec, group: str, *, project_root: Path
) -> str:
    """Upsert the deployment `spec` for one group; return its full name (`<flow>/<group>`)."""
    flow = load_flow(spec.entrypoint, project_root=project_root)
    flow_id = await client.create_flow_from_name(flow.name)
    await client.create_deployment(
        flow_id=flow_id,
        name=group,
        version=spec.version,
        description=spec.description or flow.description,
        tags=spec.tags,
        parameters=spec.parameters,
        entrypoint=spec.entrypoint,
        work_pool_name=pool_name(group),
        work_queue_name=spec.work_pool.work_queue_name,
        job_variables=spec.work_pool.job_variables,
        parameter_openapi_schema=parameter_schema(flow.fn).model_dump_for_openapi(),
        enforce_parameter_schema=spec.enforce_parameter_schema,
        concurrency_limit=spec.concurrency_limit,
        paused=False,
    )
    return deployment_name(flow.name, group)


async def ensure_infrastructure(
    config: ServiceConfig,
    *,
    prefect_yaml: Path = PREFECT_YAML,
    project_root: Path = PROJECT_ROOT,
) -> list[str]:
    """Make pools, queues and deployments match config.yaml and prefect.yaml; return the deployment names."""
    specs = read_deployment_specs(prefect_yaml)
    names: list[str] = []
    async with get_client() as client:
        for group in config.nodes.group_names():
            await ensure_work_pool(client, group)
            for spec in specs:
                names.append(await ensure_deployment(client, spec, group, project_root=project_root))
        for spec in read_named_specs(prefect_yaml):
            if spec.work_pool.name in {pool_name(g) for g in config.nodes.group_names()}:
                names.append(await ensure_named_deployment(client, spec, project_root=project_root))
    return names
