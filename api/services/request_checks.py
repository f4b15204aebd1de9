"""Checks a submit's values must pass before anything is stored: types of the control keys, text that every
database and the scheduler can carry, integer ranges of the columns, safe output names, and the flow run's size."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from api.errors import InvalidParameters, PayloadTooLarge
from api.schemas import INT64_MAX
from api.schemas import text_problem as storage_problem
from api.settings import get_api_settings
from flows.params import GenerationRequest
from workflows.catalog import Workflow
from workflows.values import ParamType

INT64_MIN = -INT64_MAX - 1
# Prefect refuses flow-run parameters over 512 KiB; a request is refused before it is stored well below that.
MAX_FLOW_PARAMETER_BYTES = 256 * 1024
# Output-name inputs of ComfyUI (SaveImage, SaveAnimatedWEBP, VHS_VideoCombine...): a file name, no folders.
OUTPUT_NAME_INPUTS = frozenset({"filename_prefix"})
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_DEPTH = 8

Fields = list[dict[str, str]]


def text_problem(value: str, *, max_chars: int | None = None) -> str | None:
    """Why a string cannot be stored or sent on (NUL, a lone surrogate, too long), or None."""
    problem = storage_problem(value)
    if problem is None and max_chars is not None and len(value) > max_chars:
        return f"is longer than {max_chars} characters"
    return problem


def check_control_types(body: dict[str, Any]) -> Fields:
    """workflow_name, priority and node_group are strings when given (a list is a 422, not a crash)."""
    return [
        {"field": key, "message": f"must be a string, got {type(body[key]).__name__}"}
        for key in ("workflow_name", "priority", "node_group")
        if body.get(key) is not None and not isinstance(body[key], str)
    ] + [
        {"field": key, "message": problem}
        for key in ("workflow_name", "priority", "node_group")
        if isinstance(body.get(key), str) and (problem := text_problem(body[key], max_chars=128))
    ]


def check_values(params: dict[str, Any]) -> Fields:
    """Every name and value a client sent: valid text within the length limit, integers within 64 bits."""
    limit = get_api_settings().max_prompt_chars
    errors: Fields = []
    for name, value in params.items():
        problem = text_problem(name, max_chars=128)
        if problem is not None:
            errors.append({"field": "body", "message": f"a parameter name {problem}"})
            continue
        problem = _value_problem(value, limit, depth=0)
        if problem is not None:
            errors.append({"field": name, "message": problem})
    return errors


def _value_problem(value: Any, limit: int, *, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return f"nested deeper than {_MAX_DEPTH} levels"
    if isinstance(value, str):
        problem = text_problem(value, max_chars=limit)
        return f"{problem} (COMFYWS_API_MAX_PROMPT_CHARS)" if problem and len(value) > limit else problem
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"must be between {INT64_MIN} and {INT64_MAX}"
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    keys = value.keys() if isinstance(value, dict) else ()
    for item in [*keys, *items]:
        problem = _value_problem(item, limit, depth=depth + 1)
        if problem is not None:
            return problem
    return None


def check_rendered(workflow: Workflow, values: dict[str, Any]) -> Fields:
    """The values the graph gets: integers fit a 64-bit column, output names are plain file names."""
    errors: Fields = []
    for param in workflow.mapping.values():
        value = values.get(param.name)
        if param.type is ParamType.INTEGER and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            errors.append({"field": param.name, "message": f"must be between {INT64_MIN} and {INT64_MAX}"})
        elif param.is_seed and isinstance(value, int) and value < 0:
            errors.append({"field": param.name, "message": "must be at least 0 (or -1 for a random seed)"})
        elif param.spec.input_name in OUTPUT_NAME_INPUTS and not _SAFE_NAME.fullmatch(str(value)):
            errors.append({
                "field": param.name,
                "message": "must be a file name of 1-64 letters, digits, '_', '.' or '-' (no folders)",
            })
    return errors


def check_request_size(request: GenerationRequest) -> None:
    """The flow run's parameters must fit what the scheduler takes: refuse before the job is stored."""
    size = len(request.model_dump_json().encode("utf-8"))
    if size > MAX_FLOW_PARAMETER_BYTES:
        raise PayloadTooLarge(
            f"body: the job's parameters take {size} bytes; at most {MAX_FLOW_PARAMETER_BYTES} are accepted"
        )


def raise_for(errors: Fields) -> None:
    if errors:
        raise InvalidParameters(errors)


def request_hash(task_type: str, body: dict[str, Any]) -> str:
    """A stable digest of a submit (task type and body, keys sorted): the same request gives the same hash."""
    canonical = json.dumps({"task_type": task_type, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
