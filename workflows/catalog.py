"""The workflow catalog: every configured graph and parameter mapping, loaded and validated at start-up."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from comfyws.config import NodeInput, ParameterSpec, ServiceConfig, TaskTypeConfig, WorkflowConfig, get_config
from comfyws.settings import get_settings
from workflows.errors import CatalogError, ParameterError, UnknownWorkflowError
from workflows.files import read_graph, read_mapping, resolve_path
from workflows.object_info import check_against_object_info, check_parameters_against_object_info, is_link
from workflows.values import ParamType, check_bounds, convert, infer_type

__all__ = [
    "Catalog",
    "CatalogError",
    "Parameter",
    "ParameterInfo",
    "TaskType",
    "Workflow",
    "check_against_object_info",
    "check_parameters_against_object_info",
    "get_catalog",
    "load_catalog",
]

# Integer inputs with these names take -1 as "pick a random seed" (the seed's convention).
SEED_INPUTS = frozenset({"seed", "noise_seed"})
SEED_MAX = 2**63 - 1


class ParameterInfo(BaseModel):
    """One parameter as clients see it in GET /api/v2/workflows."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: ParamType
    default: Any
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: list[Any] | None = None
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Parameter:
    """A mapping entry resolved against its graph: type, default and where the value goes."""

    name: str
    spec: ParameterSpec
    type: ParamType
    default: Any
    required: bool
    is_seed: bool

    def targets(self) -> list[NodeInput]:
        return [
            NodeInput(node_id=self.spec.node_id, input_name=self.spec.input_name),
            *self.spec.extra_targets,
        ]

    def info(self) -> ParameterInfo:
        return ParameterInfo(
            name=self.name,
            type=self.type,
            default=self.default,
            minimum=self.spec.minimum,
            maximum=self.spec.maximum,
            choices=self.spec.choices,
            description=self.spec.description,
            required=self.required,
        )


@dataclass(frozen=True)
class Workflow:
    """One graph of a task type with its parameters; `graph()` hands out copies so the catalog never changes."""

    task_type: str
    name: str
    description: str
    output_kind: str
    graph_path: Path
    template: dict[str, Any] = field(repr=False)
    mapping: dict[str, Parameter] = field(repr=False)

    def graph(self) -> dict[str, Any]:
        return copy.deepcopy(self.template)

    def parameters(self) -> list[ParameterInfo]:
        return [p.info() for p in self.mapping.values()]

    def parameter(self, name: str) -> Parameter:
        if name not in self.mapping:
            raise ParameterError(name, f"unknown parameter; {self.name} takes {sorted(self.mapping)}")
        return self.mapping[name]

    def required_models(self) -> list[str]:
        """Checkpoint names the graph loads (for model-aware node choice)."""
        names = {
            node["inputs"]["ckpt_name"]
            for node in self.template.values()
            if isinstance(node.get("inputs", {}).get("ckpt_name"), str)
        }
        return sorted(names)


@dataclass(frozen=True)
class TaskType:
    name: str
    default_workflow: str
    workflows: dict[str, Workflow]


class Catalog:
    """Every task type and workflow the service offers."""

    def __init__(self, task_types: dict[str, TaskType]) -> None:
        self._task_types = task_types

    def task_types(self) -> list[str]:
        return list(self._task_types)

    def task_type(self, name: str) -> TaskType:
        if name not in self._task_types:
            raise UnknownWorkflowError(f"unknown task type {name!r}; known: {sorted(self._task_types)}")
        return self._task_types[name]

    def workflows(self, task_type: str) -> list[Workflow]:
        return list(self.task_type(task_type).workflows.values())

    def get(self, task_type: str, workflow_name: str | None = None) -> Workflow:
        """The named workflow of a task type, or its default one when no name is given."""
        entry = self.task_type(task_type)
        name = workflow_name or entry.default_workflow
        if name not in entry.workflows:
            raise UnknownWorkflowError(
                f"unknown workflow {name!r} for task type {task_type!r}; known: {sorted(entry.workflows)}"
            )
        return entry.workflows[name]

    def all(self) -> list[Workflow]:
        return [wf for entry in self._task_types.values() for wf in entry.workflows.values()]


def load_catalog(config: ServiceConfig, *, workflows_dir: Path) -> Catalog:
    """Load and check every configured graph and mapping; raise CatalogError naming the first bad one."""
    task_types = {
        name: _load_task_type(name, entry, workflows_dir) for name, entry in config.task_types.items()
    }
    return Catalog(task_types)


@lru_cache
def get_catalog() -> Catalog:
    """The service's catalog, loaded once; tests call get_catalog.cache_clear() after changing config."""
    return load_catalog(get_config(), workflows_dir=get_settings().workflows_dir)


def _load_task_type(name: str, entry: TaskTypeConfig, workflows_dir: Path) -> TaskType:
    where = f"task_types.{name}"
    if not entry.workflows:
        raise CatalogError(f"{where}.workflows: a task type needs at least one workflow")
    workflows = {
        wf_name: _load_workflow(name, wf_name, wf, workflows_dir) for wf_name, wf in entry.workflows.items()
    }
    default = entry.default_workflow or next(iter(workflows))
    if default not in workflows:
        raise CatalogError(
            f"{where}.default_workflow: {default!r} is not one of its workflows {sorted(workflows)}"
        )
    return TaskType(name=name, default_workflow=default, workflows=workflows)


def _load_workflow(task_type: str, name: str, entry: WorkflowConfig, workflows_dir: Path) -> Workflow:
    where = f"task_types.{task_type}.workflows.{name}"
    graph_path = resolve_path(entry.workflow_file, workflows_dir)
    graph = read_graph(graph_path, where)
    specs = dict(
        read_mapping(resolve_path(entry.mapping_file, workflows_dir), where) if entry.mapping_file else {}
    )
    specs.update(entry.parameter_mapping)
    mapping = {p_name: _resolve_parameter(where, graph, p_name, spec) for p_name, spec in specs.items()}
    _check_derived(where, mapping)
    return Workflow(
        task_type=task_type,
        name=name,
        description=entry.description,
        output_kind=entry.output_kind,
        graph_path=graph_path,
        template=graph,
        mapping=mapping,
    )


def _resolve_parameter(where: str, graph: dict[str, Any], name: str, spec: ParameterSpec) -> Parameter:
    where = f"{where}.parameter_mapping.{name}"
    targets = [NodeInput(node_id=spec.node_id, input_name=spec.input_name), *spec.extra_targets]
    for target in targets:
        _check_target(where, graph, target)
    node = graph[spec.node_id]
    graph_value = node["inputs"][spec.input_name]
    kind = ParamType(spec.type) if spec.type else infer_type(node["class_type"], spec.input_name, graph_value)
    is_seed = kind is ParamType.INTEGER and spec.input_name in SEED_INPUTS
    required = spec.required if spec.required is not None else kind is ParamType.IMAGE
    if spec.derive is not None and spec.default_value is None and not required:
        raise CatalogError(
            f"{where}.default_value: a derived parameter needs a default_value or required: true"
        )
    raw_default = spec.default_value if spec.default_value is not None else graph_value
    default = _checked_default(where, name, kind, raw_default, spec, is_seed=is_seed)
    return Parameter(name=name, spec=spec, type=kind, default=default, required=required, is_seed=is_seed)


def _check_target(where: str, graph: dict[str, Any], target: NodeInput) -> None:
    node = graph.get(target.node_id)
    if node is None:
        raise CatalogError(
            f"{where}: node_id {target.node_id!r} is not in the graph (nodes: {sorted(graph)})"
        )
    if target.input_name not in node["inputs"]:
        raise CatalogError(
            f"{where}: node {target.node_id} ({node['class_type']}) has no input {target.input_name!r} "
            f"(inputs: {sorted(node['inputs'])})"
        )
    if is_link(node["inputs"][target.input_name]):
        raise CatalogError(
            f"{where}: input {target.input_name!r} of node {target.node_id} is a link, not a value to set"
        )


def _checked_default(
    where: str, name: str, kind: ParamType, value: Any, spec: ParameterSpec, *, is_seed: bool
) -> Any:
    try:
        converted = convert(name, kind, value)
        if not (is_seed and converted == -1):
            check_bounds(name, converted, minimum=spec.minimum, maximum=spec.maximum, choices=spec.choices)
    except ParameterError as exc:
        raise CatalogError(f"{where}.default_value: {exc.message}") from None
    return converted


def _check_derived(where: str, mapping: dict[str, Parameter]) -> None:
    for param in mapping.values():
        rule = param.spec.derive
        if rule is None:
            continue
        other = mapping.get(rule.multiply_by)
        if other is None or other.type not in (ParamType.INTEGER, ParamType.NUMBER):
            raise CatalogError(
                f"{where}.parameter_mapping.{param.name}.derive.multiply_by: "
                f"{rule.multiply_by!r} is not a numeric parameter of this workflow"
            )
