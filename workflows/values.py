"""Checking and converting one parameter value against its type, bounds and choices."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from workflows.errors import ParameterError


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    IMAGE = "image"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def infer_type(class_type: str, input_name: str, graph_value: Any) -> ParamType:
    """The type a mapping means when it names none: LoadImage.image is an image, else the graph value's type."""
    if class_type.startswith("LoadImage") and input_name == "image":
        return ParamType.IMAGE
    if isinstance(graph_value, bool):
        return ParamType.BOOLEAN
    if isinstance(graph_value, int):
        return ParamType.INTEGER
    if isinstance(graph_value, float):
        return ParamType.NUMBER
    return ParamType.STRING


def convert(field: str, kind: ParamType, value: Any) -> Any:
    """Value as `kind`; numeric strings and "true"/"false" are accepted because HTML forms send strings."""
    if kind is ParamType.BOOLEAN:
        return _to_bool(field, value)
    if kind is ParamType.INTEGER:
        return _to_int(field, value)
    if kind is ParamType.NUMBER:
        return _to_float(field, value)
    if not isinstance(value, str):
        raise ParameterError(field, f"must be a string, got {type(value).__name__}")
    if kind is ParamType.IMAGE and not value.strip():
        raise ParameterError(field, "must name an uploaded image")
    return value


def check_bounds(
    field: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: list[Any] | None = None,
) -> None:
    """Raise ParameterError when the value lies outside [minimum, maximum] or is not one of `choices`."""
    if choices is not None and value not in choices:
        raise ParameterError(field, f"must be one of {choices}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ParameterError(field, f"must be at least {_fmt(minimum)}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ParameterError(field, f"must be at most {_fmt(maximum)}, got {value!r}")


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _to_bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ParameterError(field, f"must be true or false, got {value!r}")


def _to_int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ParameterError(field, "must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ParameterError(field, f"must be an integer, got {value!r}")


def _to_float(field: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ParameterError(field, "must be a number, got a boolean")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise ParameterError(field, f"must be a number, got {value!r}") from None
    else:
        raise ParameterError(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(result):
        raise ParameterError(field, "must be a finite number")
    return result
