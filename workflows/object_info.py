"""Checks of graphs and mappings against a ComfyUI node's `GET /object_info` schemas (a contract test tool)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflows.values import ParamType

if TYPE_CHECKING:
    from workflows.catalog import Workflow

_WIDGET_CHECKS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "INT": (int, "an integer"),
    "FLOAT": ((int, float), "a number"),
    "STRING": (str, "a string"),
    "BOOLEAN": (bool, "a boolean"),
}
# Which object_info input types a mapping type may feed; combos (lists) are handled separately.
_PARAM_TO_INPUT = {
    ParamType.INTEGER: {"INT", "FLOAT"},
    ParamType.NUMBER: {"FLOAT", "INT"},
    ParamType.STRING: {"STRING"},
    ParamType.BOOLEAN: {"BOOLEAN"},
    ParamType.IMAGE: set(),
}


def is_link(value: Any) -> bool:
    """An API-format link is `[source node id, output index]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def input_specs(class_info: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any], bool]]:
    """name -> (type or combo options, options dict, required) for one node class."""
    specs: dict[str, tuple[Any, dict[str, Any], bool]] = {}
    for section in ("required", "optional"):
        for name, spec in (class_info.get("input", {}).get(section) or {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs[name] = (spec[0], options, section == "required")
    return specs


def combo_options(kind: Any, options: dict[str, Any]) -> list[Any] | None:
    """The allowed values of a combo input, or None when the input is not a combo."""
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return list(options.get("options") or [])
    return None


def _node_dependent(options: dict[str, Any]) -> bool:
    # Upload combos list the files one node happens to hold; they say nothing about another node.
    return any(key.endswith("_upload") and value for key, value in options.items())


def check_against_object_info(graph: dict[str, Any], object_info: dict[str, Any]) -> list[str]:
    """Problems that would make a node reject `graph`: unknown classes or inputs, bad links, bad widget values."""
    problems: list[str] = []
    if not any(object_info.get(node.get("class_type"), {}).get("output_node") for node in graph.values()):
        problems.append("graph has no output node")
    for node_id, node in graph.items():
        class_type = node.get("class_type")
        if class_type not in object_info:
            problems.append(f"node {node_id}: unknown class_type {class_type!r}")
            continue
        problems.extend(_check_node(graph, node_id, node, object_info))
    return problems


def _check_node(
    graph: dict[str, Any], node_id: str, node: dict[str, Any], object_info: dict[str, Any]
) -> list[str]:
    where = f"node {node_id} ({node['class_type']})"
    specs = input_specs(object_info[node["class_type"]])
    inputs = node.get("inputs") or {}
    problems = [
        f"{where}: required input {name!r} missing"
        for name, s in specs.items()
        if s[2] and name not in inputs
    ]
    for name, value in inputs.items():
        if name not in specs:
            problems.append(f"{where}: unknown input {name!r}")
            continue
        kind, options, _ = specs[name]
        if is_link(value):
            problems.extend(_check_link(graph, f"{where}.{name}", value, kind, object_info))
        else:
            problems.extend(_check_widget(f"{where}.{name}", value, kind, options))
    return problems


def _check_link(
    graph: dict[str, Any], where: str, link: list[Any], kind: Any, object_info: dict[str, Any]
) -> list[str]:
    source_id, index = link
    source = graph.get(source_id)
    if source is None:
        return [f"{where}: links to missing node {source_id!r}"]
    outputs = object_info.get(source.get("class_type"), {}).get("output", [])
    if not 0 <= index < len(outputs):
        return [f"{where}: links to output {index} of node {source_id}, which has {len(outputs)} outputs"]
    produced = outputs[index]
    if not _types_match(produced, kind):
        return [
            f"{where}: expects {_type_name(kind)} but node {source_id} output {index} is {_type_name(produced)}"
        ]
    return []


def _types_match(produced: Any, expected: Any) -> bool:
    if isinstance(expected, list) or expected == "COMBO":
        return isinstance(produced, list) or produced == "COMBO"
    if isinstance(produced, list) or not isinstance(produced, str) or not isinstance(expected, str):
        return False
    if "*" in (produced, expected):
        return True
    return bool(set(produced.split(",")) & set(expected.split(",")))


def _type_name(kind: Any) -> str:
    return "COMBO" if isinstance(kind, list) else str(kind)


def _check_widget(where: str, value: Any, kind: Any, options: dict[str, Any]) -> list[str]:
    choices = combo_options(kind, options)
    if choices is not None:
        if choices and not _node_dependent(options) and value not in choices:
            return [f"{where}: {value!r} is not one of the node's choices"]
        return []
    if kind not in _WIDGET_CHECKS:
        return [f"{where}: type {kind} needs a link, got a literal {value!r}"]
    accepted, wanted = _WIDGET_CHECKS[kind]
    if isinstance(value, bool) != (kind == "BOOLEAN") or not isinstance(value, accepted):
        return [f"{where}: must be {wanted}, got {value!r}"]
    return _check_range(where, value, options)


def _check_range(where: str, value: Any, options: dict[str, Any]) -> list[str]:
    if "min" in options and value < options["min"]:
        return [f"{where}: {value!r} is below the node's minimum {options['min']}"]
    if "max" in options and value > options["max"]:
        return [f"{where}: {value!r} is above the node's maximum {options['max']}"]
    return []


def check_parameters_against_object_info(workflow: Workflow, object_info: dict[str, Any]) -> list[str]:
    """Problems with a workflow's mapping: types the target input cannot take, bounds or choices beyond the node's."""
    graph = workflow.graph()
    problems: list[str] = []
    for param in workflow.mapping.values():
        for target in param.targets():
            node = graph[target.node_id]
            specs = input_specs(object_info.get(node["class_type"], {}))
            if target.input_name not in specs:
                problems.append(f"{param.name}: node {target.node_id} has no input {target.input_name!r}")
                continue
            kind, options, _ = specs[target.input_name]
            where = f"{param.name} -> node {target.node_id}.{target.input_name}"
            problems.extend(_check_param_target(where, param, kind, options))
    return problems


def _check_param_target(where: str, param: Any, kind: Any, options: dict[str, Any]) -> list[str]:
    choices = combo_options(kind, options)
    if choices is not None:
        if param.type not in (ParamType.STRING, ParamType.IMAGE):
            return [f"{where}: a {param.type} parameter cannot feed a combo input"]
        if param.type is ParamType.IMAGE and not _node_dependent(options):
            return [f"{where}: an image parameter needs an image-upload input"]
        if choices and param.spec.choices and not set(param.spec.choices) <= set(choices):
            return [f"{where}: choices {sorted(set(param.spec.choices) - set(choices))} unknown to the node"]
        return []
    if kind not in _PARAM_TO_INPUT[param.type]:
        return [f"{where}: a {param.type} parameter cannot feed a {kind} input"]
    if param.spec.derive is not None:
        low, high = param.spec.derive.minimum, param.spec.derive.maximum
    else:
        low, high = param.spec.minimum, param.spec.maximum
    return _check_bounds_within(where, low, high, options)


def _check_bounds_within(
    where: str, low: float | None, high: float | None, options: dict[str, Any]
) -> list[str]:
    problems = []
    if "min" in options and (low is None or low < options["min"]):
        problems.append(f"{where}: minimum {low} is below the node's minimum {options['min']}")
    if "max" in options and (high is None or high > options["max"]):
        problems.append(f"{where}: maximum {high} is above the node's maximum {options['max']}")
    return problems
