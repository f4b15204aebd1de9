"""Reading workflow files: API-format graphs (JSON) and parameter mappings (YAML), with errors that name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from comfyws.config import ParameterSpec
from workflows.errors import CatalogError


def resolve_path(name: str, workflows_dir: Path) -> Path:
    """A configured file name as a path: absolute, else under the workflows directory."""
    path = Path(name)
    if path.is_absolute():
        return path
    primary = workflows_dir / path
    # The seed wrote paths as "workflows/<type>/<file>", relative to the project rather than the folder.
    fallback = workflows_dir.parent / path
    return primary if primary.exists() or not fallback.exists() else fallback


def read_graph(path: Path, where: str) -> dict[str, Any]:
    """An API-format graph; `where` (the config key) starts every error message."""
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{where}.workflow_file: graph file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{where}.workflow_file: {path} is not valid JSON: {exc}") from None
    if not isinstance(graph, dict) or not graph:
        raise CatalogError(f"{where}.workflow_file: {path} must be an API-format graph (node id -> node)")
    for node_id, node in graph.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs"), dict)
        ):
            raise CatalogError(
                f"{where}.workflow_file: {path}: node {node_id!r} needs a class_type and an inputs mapping"
            )
    return graph


def read_mapping(path: Path, where: str) -> dict[str, ParameterSpec]:
    """A mapping file's `parameter_mapping` entries, each checked against ParameterSpec."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CatalogError(f"{where}.mapping_file: mapping file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{where}.mapping_file: {path} is not valid YAML: {exc}") from None
    entries = raw.get("parameter_mapping") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise CatalogError(f"{where}.mapping_file: {path} needs a top-level parameter_mapping mapping")
    specs: dict[str, ParameterSpec] = {}
    for p_name, entry in entries.items():
        try:
            specs[p_name] = ParameterSpec.model_validate(entry)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or p_name}: {e['msg']}" for e in exc.errors())
            raise CatalogError(
                f"{where}.mapping_file: {path}: parameter_mapping.{p_name}: {detail}"
            ) from None
    return specs
