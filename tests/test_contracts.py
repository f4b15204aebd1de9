"""Contracts between the operator's files and the code: prefect.yaml, workflow graphs and mappings, config files.

The third contract of STYLE.md §9, that every recorded WebSocket and history message in
`tests/data/comfyui/traces` parses, is tested in `tests/workers/test_comfyui_events.py`; a test here only
checks that its parametrisation covers every trace on disk. The last test keeps the repository self-contained:
no tracked file may read the reference material kept beside it on the development machine.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prefect import Flow

from comfyws.config import ServiceConfig, load_config
from comfyws.settings import PROJECT_ROOT
from comfyws.simnode.catalog import NodeCatalog
from comfyws.simnode.config import DEFAULT_CHECKPOINTS, DEFAULT_OBJECT_INFO
from comfyws.simnode.validation import PromptValidator
from deployments.engine import load_flow
from deployments.setup import PREFECT_YAML, DeploymentSpec, read_deployment_specs
from flows.params import BATCH_FLOW, FLOW_FOR_TASK_TYPE
from tests.workers.comfyui_support import TRACES, trace_names
from workflows.catalog import Catalog, Workflow, load_catalog
from workflows.object_info import check_against_object_info, input_specs
from workflows.render import render
from workflows.values import ParamType

CONFIGS = ("config.yaml", "config.example.yaml")
WORKFLOWS_DIR = PROJECT_ROOT / "workflows"
# The recorded schema of a real ComfyUI 0.3.64, which the simulated node serves (one copy in the repository).
OBJECT_INFOS = {"recorded": DEFAULT_OBJECT_INFO}
SAMPLE_TEXT = "a lighthouse at dusk, contract test"
SAMPLE_IMAGE = "contract-input.png"


@cache
def config(name: str) -> ServiceConfig:
    return load_config(PROJECT_ROOT / name)


@cache
def catalog(name: str) -> Catalog:
    return load_catalog(config(name), workflows_dir=WORKFLOWS_DIR)


@cache
def object_info(which: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(OBJECT_INFOS[which].read_text(encoding="utf-8"))
    return info


def shipped_workflows() -> list[tuple[str, Workflow]]:
    return [(name, wf) for name in CONFIGS for wf in catalog(name).all()]


def workflow_id(case: tuple[str, Workflow]) -> str:
    return f"{case[0]}:{case[1].task_type}/{case[1].name}"


def rendered(workflow: Workflow) -> dict[str, Any]:
    """The graph a client's minimal request produces: required text and images given, the rest defaults."""
    given: dict[str, Any] = {}
    for param in workflow.mapping.values():
        if param.type is ParamType.IMAGE:
            given[param.name] = SAMPLE_IMAGE
        elif param.required and param.type is ParamType.STRING:
            given[param.name] = SAMPLE_TEXT
        elif param.required:
            given[param.name] = param.default
    return render(workflow, given).graph


@pytest.mark.parametrize("spec", read_deployment_specs(PREFECT_YAML), ids=lambda s: s.entrypoint)
def test_every_prefect_yaml_entrypoint_names_an_async_flow(spec: DeploymentSpec) -> None:
    flow = load_flow(spec.entrypoint, project_root=PROJECT_ROOT)
    assert isinstance(flow, Flow), f"{spec.entrypoint} is a {type(flow).__name__}, not a Prefect flow"
    # The in-process worker awaits the flow on its own event loop; a sync flow would block every other run.
    assert inspect.iscoroutinefunction(flow.fn), f"{spec.entrypoint} must be `async def`"
    # Generation flows take a ledger job; the batch feeder takes a ledger batch (or a spec that makes one).
    assert {"job_id"} & set(inspect.signature(flow.fn).parameters) or flow.name == BATCH_FLOW


def test_every_flow_the_api_launches_has_a_deployment() -> None:
    deployed = {load_flow(s.entrypoint, project_root=PROJECT_ROOT).name for s in read_deployment_specs()}
    launched = set(FLOW_FOR_TASK_TYPE.values())
    assert launched <= deployed, f"no prefect.yaml deployment for {sorted(launched - deployed)}"


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_load_without_unknown_keys(name: str) -> None:
    loaded = config(name)
    # The top level keeps unknown keys for annotations; a misspelt section name would be silently ignored.
    assert not loaded.model_extra, f"{name}: unknown top-level keys {sorted(loaded.model_extra or {})}"
    assert loaded.task_types, f"{name} offers no task type"
    unrouted = sorted(set(loaded.task_types) - set(FLOW_FOR_TASK_TYPE))
    assert not unrouted, f"{name}: task types with no flow in flows.params.FLOW_FOR_TASK_TYPE: {unrouted}"


@pytest.mark.parametrize("case", shipped_workflows(), ids=workflow_id)
def test_every_mapping_target_is_a_declared_input_of_its_node(case: tuple[str, Workflow]) -> None:
    _, workflow = case
    graph = workflow.graph()
    for param in workflow.mapping.values():
        for target in param.targets():
            where = f"{param.name} -> node {target.node_id}.{target.input_name}"
            assert target.node_id in graph, f"{where}: no such node"
            assert target.input_name in graph[target.node_id]["inputs"], f"{where}: not an input in the graph"
            for which in OBJECT_INFOS:
                class_info = object_info(which)[graph[target.node_id]["class_type"]]
                assert target.input_name in input_specs(class_info), f"{where}: not declared in {which}"


@pytest.mark.parametrize("which", sorted(OBJECT_INFOS))
@pytest.mark.parametrize("case", shipped_workflows(), ids=workflow_id)
def test_rendered_graphs_pass_the_simulated_nodes_validator(case: tuple[str, Workflow], which: str) -> None:
    _, workflow = case
    node_classes = NodeCatalog(
        OBJECT_INFOS[which], checkpoints=list(DEFAULT_CHECKPOINTS), list_inputs=lambda: [SAMPLE_IMAGE]
    )
    verdict = PromptValidator(node_classes, input_exists=lambda name: name == SAMPLE_IMAGE).validate(
        rendered(workflow)
    )
    assert verdict.ok and not verdict.node_errors, (verdict.error, verdict.node_errors)


@pytest.mark.parametrize("case", shipped_workflows(), ids=workflow_id)
def test_rendered_graphs_match_the_recorded_object_info(case: tuple[str, Workflow]) -> None:
    _, workflow = case
    assert check_against_object_info(rendered(workflow), object_info("recorded")) == []


def test_the_trace_parsing_tests_cover_every_recorded_trace() -> None:
    on_disk = sorted(p.stem for p in Path(TRACES).glob("*.json"))
    assert on_disk and trace_names() == on_disk
    source = (PROJECT_ROOT / "tests" / "workers" / "test_comfyui_events.py").read_text(encoding="utf-8")
    assert "def test_every_recorded_text_frame_parses_to_a_known_event" in source
    assert "def test_every_recorded_history_message_parses" in source


# Spelled in pieces so that this file does not match itself.
_SHARED = "sha" + "red"
OUTSIDE_REFERENCES = re.compile(
    "|".join([
        re.escape(".." + "/" + _SHARED),  # the sibling folder, also inside longer relative paths
        re.escape(_SHARED + "/comfyui"),
        re.escape(_SHARED + "/notes"),
        re.escape(_SHARED + "/STYLE"),
        r"""parents?(\[\d+\])?\s*/\s*["']""" + _SHARED + r"""["']""",  # Path(...).parent / <that folder>
        r"""["']\.\.["']\s*,\s*["']""" + _SHARED + r"""["']""",  # os.path.join(..., "..", <that folder>)
        r"""["']""" + _SHARED + r"""["']\s*/\s*["']comfyui""",  # <anything> / <that folder> / "comfyui"
    ])
)


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=False)
    if listed.returncode != 0:  # not a git checkout (an unpacked archive): every file but generated ones
        skip = {".git", ".venv", "node_modules", "__pycache__", "data", ".mypy_cache", ".ruff_cache"}
        return [p for p in PROJECT_ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(PROJECT_ROOT).parts)]
    return [PROJECT_ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_no_file_reads_the_reference_material_beside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        offenders += [f"{path.relative_to(PROJECT_ROOT)}: {m.group(0)}" for m in OUTSIDE_REFERENCES.finditer(text)]
    assert offenders == [], "the repository must stand on its own (copy what it needs into it):\n" + "\n".join(
        offenders
    )
