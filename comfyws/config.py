"""The operator's `config.yaml`: nodes, node groups, task types, workflows and parameter mappings, validated."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from comfyws.settings import get_settings

Strategy = Literal["round_robin", "least_loaded", "weighted", "random", "model_aware"]


class ConfigError(Exception):
    """A config.yaml that cannot be used; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StaticNode(_Strict):
    node_id: str = Field(description="Unique node name")
    host: str = Field(description="Host name or IP of the ComfyUI server")
    port: int = Field(8188, ge=1, le=65535, description="ComfyUI HTTP port")
    scheme: Literal["http", "https"] = Field("http", description="http or https")
    max_concurrent: int = Field(1, ge=1, description="Prompts the node may hold (running + queued on it)")
    capabilities: list[str] = Field(default_factory=list, description="Task types the node serves; empty = all")
    group: str = Field("default", description="Node group = Prefect work pool name suffix")
    weight: float = Field(1.0, gt=0, description="Share for the weighted strategy")

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class NodeGroup(_Strict):
    strategy: Strategy = Field("least_loaded", description="Load-balancing strategy for this group")
    workers: int = Field(1, ge=0, description="Workers `comfyws run` starts for this group's pool")
    concurrency: int = Field(8, ge=1, description="Flow runs one worker runs at once")
    outage_wait_s: float = Field(
        600.0, ge=0, description="How long a job waits while no node of the group can take it (all down, "
        "unhealthy, disabled or draining) before it ends failed"
    )


class HealthConfig(_Strict):
    interval_seconds: float = Field(10.0, gt=0, description="Seconds between probes of a node")
    timeout_seconds: float = Field(5.0, gt=0, description="Probe timeout")
    unhealthy_after: int = Field(3, ge=1, description="Consecutive failures before a node is marked unhealthy")
    healthy_after: int = Field(2, ge=1, description="Consecutive successes before it is healthy again")
    suspect_interval_seconds: float = Field(
        1.0, gt=0, description="Seconds between probes of an unhealthy node (one that refused a job is marked "
        "unhealthy at once), so a node that comes back is used again within seconds"
    )


# Where dynamically registered nodes may live: loopback and the private ranges. Link-local (169.254/16, the cloud
# metadata service) and public addresses are out unless the operator adds them.
DEFAULT_NODE_NETWORKS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"]


class NodesConfig(_Strict):
    static_nodes: list[StaticNode] = Field(default_factory=list, description="Nodes known from config")
    allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network(n) for n in DEFAULT_NODE_NETWORKS],
        description="CIDRs a registered node's base_url must resolve into (static nodes are trusted as written)",
    )
    groups: dict[str, NodeGroup] = Field(default_factory=dict, description="Per node-group settings")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health monitor settings")
    max_attempts: int = Field(
        3, ge=1, description="Executions a job may lose to node faults before it ends failed (refusals do not count)"
    )

    @field_validator("static_nodes")
    @classmethod
    def _unique_ids(cls, nodes: list[StaticNode]) -> list[StaticNode]:
        seen: set[str] = set()
        for node in nodes:
            if node.node_id in seen:
                raise ValueError(f"duplicate node_id {node.node_id!r}")
            seen.add(node.node_id)
        return nodes

    def group_names(self) -> list[str]:
        names = {n.group for n in self.static_nodes} | set(self.groups) | {"default"}
        return sorted(names)

    def group(self, name: str) -> NodeGroup:
        return self.groups.get(name) or NodeGroup()


class NodeInput(_Strict):
    node_id: str = Field(description="Graph node id")
    input_name: str = Field(description="Input of that node")


class DerivedValue(_Strict):
    """The node input gets round(value * <multiply_by parameter>), clamped to [minimum, maximum]."""

    multiply_by: str = Field(description="Another parameter of the same workflow, e.g. fps for a duration")
    minimum: int = Field(1, description="Lowest value sent to the node")
    maximum: int | None = Field(None, description="Highest value sent to the node (larger results are capped)")


class ParameterSpec(_Strict):
    node_id: str = Field(description="Graph node that receives the value")
    input_name: str = Field(description="Input of that node")
    default_value: Any = Field(None, description="Config default; None = use the graph's own value")
    type: Literal["string", "integer", "number", "boolean", "image"] | None = Field(
        None, description="Value type; inferred from the graph value when omitted"
    )
    minimum: int | float | None = Field(None, description="Lowest accepted value")
    maximum: int | float | None = Field(None, description="Highest accepted value")
    choices: list[Any] | None = Field(None, description="Accepted values")
    description: str = Field("", description="Shown to clients in GET /api/v2/workflows")
    required: bool | None = Field(
        None, description="The request must give a value; None = required for image parameters only"
    )
    extra_targets: list[NodeInput] = Field(
        default_factory=list, description="Further node inputs that receive the same value"
    )
    derive: DerivedValue | None = Field(
        None, description="Send a value computed from this one and another parameter instead of the value"
    )


class WorkflowConfig(_Strict):
    workflow_file: str = Field(description="API-format graph, relative to the workflows directory or absolute")
    mapping_file: str | None = Field(None, description="YAML parameter mapping (the seed's format)")
    parameter_mapping: dict[str, ParameterSpec] = Field(
        default_factory=dict, description="Inline mapping; overrides entries of mapping_file"
    )
    description: str = Field("", description="Human description")
    output_kind: Literal["image", "video"] = Field("image", description="What the workflow produces")


class TaskTypeConfig(_Strict):
    default_workflow: str | None = Field(None, description="Workflow used when a request names none")
    workflows: dict[str, WorkflowConfig] = Field(description="Workflows of this task type")


class DatabaseUrl(_Strict):
    host: str = "localhost"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str

    def url(self) -> str:
        from urllib.parse import quote_plus

        return (
            f"mysql+pymysql://{quote_plus(self.user)}:{quote_plus(self.password)}"
            f"@{self.host}:{self.port}/{self.database}?charset=utf8mb4"
        )


class MysqlConfig(_Strict):
    client: DatabaseUrl | None = None
    admin: DatabaseUrl | None = None
    shared: DatabaseUrl | None = None


class RedisConfig(_Strict):
    host: str = "localhost"
    port: int = 6379
    db: int = 0
    password: str | None = None

    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"


class SelfRegisteredQuota(_Strict):
    """Bounds for anyone who registered alone: high enough for a busy integration (and the benchmarks' bursts of
    a few hundred jobs), finite so that one registration cannot flood the scheduler. Admins tune each client."""

    daily_quota: int | None = Field(5000, ge=0, description="Jobs per day; null = unlimited")
    jobs_per_minute: int | None = Field(600, ge=0, description="Submits per minute; null = unlimited")
    max_concurrent_jobs: int | None = Field(
        500, ge=0, description="Jobs not yet finished at once; null = unlimited"
    )


class AuthConfig(_Strict):
    registration: Literal["open", "token", "closed"] | None = Field(
        None,
        description="Who may register a client at POST /api/v2/auth/register: anyone (open), holders of the "
        "registration token (token), nobody but admins (closed); unset = closed in production, open elsewhere",
    )
    self_registered_quota: SelfRegisteredQuota = Field(
        default_factory=SelfRegisteredQuota, description="Quota given to clients that registered themselves"
    )


class BatchesConfig(_Strict):
    max_items: int = Field(10_000, ge=1, description="Items one batch may hold (a larger batch or sweep is 422)")
    lookahead: int = Field(
        2, ge=0, description="Flow runs a batch keeps beyond its group's free node slots: items get their runs as "
        "capacity frees, never all at once"
    )
    max_in_flight: int = Field(16, ge=1, description="Upper bound of a batch's items that have a flow run at once")
    feeder_stale_s: float = Field(
        30.0, gt=0, description="A batch whose feeder was not seen for this long gets a new one (a worker died)"
    )


class ServiceConfig(BaseModel):
    """The whole config.yaml. Unknown top-level keys are kept (operators annotate files) but not used."""

    model_config = ConfigDict(extra="allow")

    mysql: MysqlConfig | None = Field(None, description="MySQL databases; SQLite files when absent")
    redis: RedisConfig | None = Field(None, description="Redis for cross-process progress; in-process when absent")
    nodes: NodesConfig = Field(default_factory=NodesConfig, description="ComfyUI nodes and groups")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Client registration policy")
    task_types: dict[str, TaskTypeConfig] = Field(default_factory=dict, description="Generation types")
    batches: BatchesConfig = Field(default_factory=BatchesConfig, description="Batches of jobs (issue 12)")


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        lines.append(f"{key}: {e['msg']}")
    return "; ".join(lines)


def load_config(path: Path) -> ServiceConfig:
    """Read and validate a config file; raise ConfigError naming the bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return ServiceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_error(exc)}") from exc


@lru_cache
def get_config() -> ServiceConfig:
    """The service's config, read once; tests call get_config.cache_clear() after changing it."""
    return load_config(get_settings().config_path)
