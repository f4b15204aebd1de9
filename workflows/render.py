"""Turning a workflow and a request's parameters into the graph a node runs."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from workflows.catalog import SEED_MAX, Parameter, Workflow
from workflows.errors import ParameterError
from workflows.values import ParamType, check_bounds, convert


@dataclass(frozen=True)
class RenderedGraph:
    """A graph ready to submit, with the values used (random seed and derived inputs included)."""

    graph: dict[str, Any]
    values: dict[str, Any]
    seed: int | None
    input_images: list[str]


def render(workflow: Workflow, params: dict[str, Any], *, rng: random.Random | None = None) -> RenderedGraph:
    """Fill the graph: the request's value wins, then the config default, then the graph's own value.

    A value of None counts as absent. A seed of -1 becomes a random 0..2**63-1. A derived parameter (e.g. a
    video's duration) sends round(value x other parameter), clamped to its rule, and `values` also records that
    result under the node input's name. Image parameters carry node-side file names; `input_images` names them.
    """
    for name in params:
        workflow.parameter(name)
    chooser = rng or random.SystemRandom()
    values = {p.name: _value(p, params.get(p.name), chooser) for p in workflow.mapping.values()}
    graph = workflow.graph()
    for param in workflow.mapping.values():
        sent = _derived(param, values) if param.spec.derive else values[param.name]
        if param.spec.derive and param.spec.input_name not in workflow.mapping:
            values[param.spec.input_name] = sent
        for target in param.targets():
            inputs = graph[target.node_id]["inputs"]
            inputs[target.input_name] = _fit(sent, inputs[target.input_name])
    seeds = [values[p.name] for p in workflow.mapping.values() if p.is_seed]
    images = [p.name for p in workflow.mapping.values() if p.type is ParamType.IMAGE]
    return RenderedGraph(graph=graph, values=values, seed=seeds[0] if seeds else None, input_images=images)


def _value(param: Parameter, given: Any, rng: random.Random) -> Any:
    if given is None:
        if param.required:
            raise ParameterError(param.name, "is required")
        value = param.default
    else:
        value = convert(param.name, param.type, given)
        if not (param.is_seed and value == -1):
            spec = param.spec
            check_bounds(param.name, value, minimum=spec.minimum, maximum=spec.maximum, choices=spec.choices)
    if param.is_seed and value == -1:
        return rng.randint(0, SEED_MAX)
    return value


def _derived(param: Parameter, values: dict[str, Any]) -> int:
    rule = param.spec.derive
    assert rule is not None
    # Half-up rounding: 2.5 s at 5 fps is 13 frames, not Python's banker's 12.
    result: int = max(rule.minimum, math.floor(values[param.name] * values[rule.multiply_by] + 0.5))
    return min(result, rule.maximum) if rule.maximum is not None else result


def _fit(value: Any, like: Any) -> Any:
    """Match the number kind the graph had at that input: a FLOAT input gets 6.0, an INT input 6."""
    if isinstance(value, bool) or isinstance(like, bool):
        return value
    if isinstance(like, float) and isinstance(value, int):
        return float(value)
    if isinstance(like, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
