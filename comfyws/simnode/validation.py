"""Graph validation ported from ComfyUI's execution.validate_prompt: same checks, same error bodies."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from comfyws.simnode.catalog import NodeCatalog, combo_options, split_spec

Error = dict[str, Any]
Verdict = tuple[bool, list[Error], str]

# Classes whose file input is checked by custom validation instead of the combo list, as on a real node.
_FILE_INPUTS = {"LoadImage": "image"}
_LIST_INFO_LIMIT = 20


@dataclass
class Validation:
    """Outcome of validating one prompt: either outputs to run (maybe with node_errors) or a 400 error."""

    ok: bool
    error: Error | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def error_body(kind: str, message: str, details: str = "") -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


class PromptValidator:
    """Validates API-format graphs against a node catalog."""

    def __init__(self, catalog: NodeCatalog, *, input_exists: Callable[[str], bool]) -> None:
        self._catalog = catalog
        self._input_exists = input_exists

    def validate(self, prompt: dict[str, Any]) -> Validation:
        outputs, failure = self._find_outputs(prompt)
        if failure is not None:
            return Validation(ok=False, error=failure)
        validated: dict[str, Verdict] = {}
        good: list[str] = []
        output_errors: list[Error] = []
        node_errors: dict[str, Any] = {}
        for out in outputs:
            ok, reasons = self._validate_output(prompt, out, validated)
            if ok:
                good.append(out)
                continue
            output_errors += reasons
            self._collect_node_errors(prompt, out, validated, node_errors)
        if not good:
            details = "\n".join(f"{e['message']}: {e['details']}" for e in output_errors)
            error = error_body("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
            return Validation(ok=False, error=error, node_errors=node_errors)
        return Validation(ok=True, outputs=good, node_errors=node_errors)

    def _find_outputs(self, prompt: dict[str, Any]) -> tuple[list[str], Error | None]:
        outputs: list[str] = []
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                message = "Cannot execute because a node is missing the class_type property."
                return [], error_body("invalid_prompt", message, f"Node ID '#{node_id}'")
            class_type = node["class_type"]
            if not isinstance(class_type, str) or not self._catalog.has(class_type):
                message = f"Cannot execute because node {class_type} does not exist."
                return [], error_body("invalid_prompt", message, f"Node ID '#{node_id}'")
            if self._catalog.is_output(class_type):
                outputs.append(node_id)
        if not outputs:
            return [], error_body("prompt_no_outputs", "Prompt has no outputs")
        return outputs, None

    def _validate_output(self, prompt: dict[str, Any], out: str, validated: dict[str, Verdict]) -> tuple[bool, list[Error]]:
        try:
            ok, reasons, _ = self._validate_node(prompt, out, validated)
            return ok, reasons
        except Exception as ex:  # noqa: BLE001 - a real node reports any crash of its validator this way
            typ, _, tb = sys.exc_info()
            reasons = [{
                "type": "exception_during_validation",
                "message": "Exception when validating node",
                "details": str(ex),
                "extra_info": {"exception_type": _type_name(typ), "traceback": traceback.format_tb(tb)},
            }]
            validated[out] = (False, reasons, out)
            return False, reasons

    def _collect_node_errors(
        self, prompt: dict[str, Any], out: str, validated: dict[str, Verdict], node_errors: dict[str, Any]
    ) -> None:
        for node_id, (ok, reasons, _) in validated.items():
            if ok or not reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]},
            )
            entry["dependent_outputs"].append(out)

    def _validate_node(self, prompt: dict[str, Any], node_id: str, validated: dict[str, Verdict]) -> Verdict:
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        class_type = node["class_type"]
        inputs = node.setdefault("inputs", {})
        errors: list[Error] = []
        valid = True
        for name, section, spec in self._catalog.inputs(class_type):
            if name not in inputs:
                if section == "required":
                    errors.append(_missing(name))
                continue
            if isinstance(inputs[name], list):
                valid = self._check_link(prompt, inputs[name], name, spec, validated, errors) and valid
            else:
                errors += self._check_value(class_type, inputs, name, spec)
        errors += self._custom_validation(class_type, inputs)
        verdict: Verdict = (False, errors, node_id) if errors or not valid else (True, [], node_id)
        validated[node_id] = verdict
        return verdict

    def _check_link(
        self,
        prompt: dict[str, Any],
        link: list[Any],
        name: str,
        spec: list[Any],
        validated: dict[str, Verdict],
        errors: list[Error],
    ) -> bool:
        input_type, options = split_spec(spec)
        info = [input_type, options]
        if len(link) != 2:
            errors.append({
                "type": "bad_linked_input",
                "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                "details": name,
                "extra_info": {"input_name": name, "input_config": info, "received_value": link},
            })
            return True
        source_id, slot = link
        received = self._catalog.return_types(prompt[source_id]["class_type"])[slot]
        if not types_match(received, input_type):
            errors.append(_mismatch(name, info, received, link))
            return True
        try:
            return self._validate_node(prompt, source_id, validated)[0]
        except Exception as ex:  # noqa: BLE001 - recorded against the linked node, like a real node does
            typ, _, tb = sys.exc_info()
            validated[source_id] = (False, [{
                "type": "exception_during_inner_validation",
                "message": "Exception when validating inner node",
                "details": str(ex),
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "exception_message": str(ex),
                    "exception_type": _type_name(typ),
                    "traceback": traceback.format_tb(tb),
                    "linked_node": link,
                },
            }], source_id)
            return False

    def _check_value(self, class_type: str, inputs: dict[str, Any], name: str, spec: list[Any]) -> list[Error]:
        input_type, options = split_spec(spec)
        info = [input_type, options]
        val = inputs[name]
        try:
            val = _convert(input_type, val)
            inputs[name] = val
        except Exception as ex:  # noqa: BLE001 - any conversion error becomes invalid_input_type
            return [{
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{name}, {val}, {ex}",
                "extra_info": {"input_name": name, "input_config": info, "received_value": val,
                               "exception_message": str(ex)},
            }]
        if _FILE_INPUTS.get(class_type) == name:
            return []
        return _range_errors(name, val, info, options) + _combo_errors(name, val, info, input_type, options)

    def _custom_validation(self, class_type: str, inputs: dict[str, Any]) -> list[Error]:
        name = _FILE_INPUTS.get(class_type)
        if name is None or name not in inputs or isinstance(inputs[name], list):
            return []
        if self._input_exists(str(inputs[name])):
            return []
        return [{
            "type": "custom_validation_failed",
            "message": "Custom validation failed for node",
            "details": f"{name} - Invalid image file: {inputs[name]}",
            "extra_info": {"input_name": name},
        }]


def types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's validate_node_input (non-strict): '*' matches anything, comma lists intersect."""
    if received == expected or received == "*" or expected == "*":
        return True
    if expected == "COMBO" and isinstance(received, list):
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return bool(got & want)


def _convert(input_type: Any, val: Any) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    convert = converters.get(input_type) if isinstance(input_type, str) else None
    return convert(val) if convert else val


def _range_errors(name: str, val: Any, info: list[Any], options: dict[str, Any]) -> list[Error]:
    errors: list[Error] = []
    extra = {"input_name": name, "input_config": info, "received_value": val}
    if "min" in options and val < options["min"]:
        errors.append({"type": "value_smaller_than_min", "message": f"Value {val} smaller than min of {options['min']}",
                       "details": name, "extra_info": extra})
    if "max" in options and val > options["max"]:
        errors.append({"type": "value_bigger_than_max", "message": f"Value {val} bigger than max of {options['max']}",
                       "details": name, "extra_info": extra})
    return errors


def _combo_errors(name: str, val: Any, info: list[Any], input_type: Any, options: dict[str, Any]) -> list[Error]:
    choices = combo_options(input_type, options)
    if choices is None or val in choices:
        return []
    input_config: Any = info
    if len(choices) > _LIST_INFO_LIMIT:
        # a real node does not echo huge lists such as scanned model paths
        list_info, input_config = f"(list of length {len(choices)})", None
    else:
        list_info = str(choices)
    return [{
        "type": "value_not_in_list",
        "message": "Value not in list",
        "details": f"{name}: '{val}' not in {list_info}",
        "extra_info": {"input_name": name, "input_config": input_config, "received_value": val},
    }]


def _missing(name: str) -> Error:
    return {"type": "required_input_missing", "message": "Required input is missing", "details": name,
            "extra_info": {"input_name": name}}


def _mismatch(name: str, info: list[Any], received: Any, link: list[Any]) -> Error:
    return {
        "type": "return_type_mismatch",
        "message": "Return type mismatch between linked nodes",
        "details": f"{name}, received_type({received}) mismatch input_type({info[0]})",
        "extra_info": {"input_name": name, "input_config": info, "received_type": received, "linked_node": link},
    }


def _type_name(typ: type[BaseException] | None) -> str:
    if typ is None:
        return "Exception"
    module = typ.__module__
    return typ.__qualname__ if module == "builtins" else f"{module}.{typ.__qualname__}"
