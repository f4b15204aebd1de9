"""Node classes the simulated node knows: the recorded object_info with its model and input-file lists patched."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHECKPOINT_CLASSES = ("CheckpointLoaderSimple", "ImageOnlyCheckpointLoader")
_INPUT_FILE_CLASSES = ("LoadImage",)
_SECTIONS = ("required", "optional")


class NodeCatalog:
    """Schemas of every node class, as `GET /object_info` serves them."""

    def __init__(self, path: Path, *, checkpoints: list[str], list_inputs: Callable[[], list[str]]) -> None:
        self._raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._checkpoints = list(checkpoints)
        self._list_inputs = list_inputs

    @property
    def checkpoints(self) -> list[str]:
        return list(self._checkpoints)

    def has(self, class_type: str) -> bool:
        return class_type in self._raw

    def info(self, class_type: str) -> dict[str, Any]:
        """One class's schema with live choice lists; raises KeyError for an unknown class."""
        raw: dict[str, Any] = self._raw[class_type]
        if class_type in _CHECKPOINT_CLASSES:
            return self._with_choices(raw, "ckpt_name", self._checkpoints)
        if class_type in _INPUT_FILE_CLASSES:
            return self._with_choices(raw, "image", self._list_inputs())
        return raw

    def all(self) -> dict[str, Any]:
        return {name: self.info(name) for name in self._raw}

    def is_output(self, class_type: str) -> bool:
        return bool(self._raw[class_type].get("output_node"))

    def return_types(self, class_type: str) -> tuple[Any, ...]:
        # A tuple, like a real node's RETURN_TYPES, so a bad slot raises "tuple index out of range".
        return tuple(self._raw[class_type].get("output", []))

    def inputs(self, class_type: str) -> list[tuple[str, str, list[Any]]]:
        """(name, "required"|"optional", spec) for every declared input, required first."""
        declared = self.info(class_type).get("input", {})
        return [(name, section, spec) for section in _SECTIONS for name, spec in declared.get(section, {}).items()]

    @staticmethod
    def _with_choices(raw: dict[str, Any], input_name: str, choices: list[str]) -> dict[str, Any]:
        patched = copy.deepcopy(raw)
        spec = patched["input"]["required"][input_name]
        spec[0] = sorted(choices) if input_name == "image" else list(choices)
        return patched


def split_spec(spec: list[Any]) -> tuple[Any, dict[str, Any]]:
    """(type, options) of an input spec such as ["INT", {...}] or [["a", "b"], {...}]."""
    input_type = spec[0] if spec else "*"
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return input_type, options


def combo_options(input_type: Any, options: dict[str, Any]) -> list[Any] | None:
    """The allowed values of a COMBO input, or None when the input is not a combo."""
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO":
        return list(options.get("options", []))
    return None
