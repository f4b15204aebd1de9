"""The catalog: the shipped workflows load and match ComfyUI's schemas; a bad config stops with a named key."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from comfyws.config import get_config, load_config
from comfyws.settings import get_settings
from tests.workflows.helpers import (
    CONFIG_PATH,
    TINY_GRAPH,
    WORKFLOWS_DIR,
    load_object_info,
    tiny_task_types,
    tiny_workflow_dir,
    write_config,
)
from workflows.catalog import (
    Catalog,
    CatalogError,
    check_against_object_info,
    check_parameters_against_object_info,
    get_catalog,
    load_catalog,
)
from workflows.render import render

SHIPPED = {
    "text_to_image": "sd_basic",
    "text_to_image_sdxl": "sdxl_basic",
    "image_to_video": "svd_basic",
    "image_to_image": "img2img_basic",
}
PROMPT = {"node_id": "2", "input_name": "text", "type": "string"}


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return load_object_info()


@pytest.fixture(scope="module", params=["config.yaml", "config.example.yaml"])
def shipped(request: pytest.FixtureRequest) -> Catalog:
    return load_catalog(load_config(CONFIG_PATH.parent / request.param), workflows_dir=WORKFLOWS_DIR)


def test_shipped_configs_offer_every_task_type_with_its_default(shipped: Catalog) -> None:
    assert sorted(shipped.task_types()) == sorted(SHIPPED)
    for task_type, default in SHIPPED.items():
        assert shipped.get(task_type).name == default
    assert shipped.get("image_to_video").output_kind == "video"


def test_every_shipped_graph_is_accepted_by_object_info(
    shipped: Catalog, object_info: dict[str, Any]
) -> None:
    for workflow in shipped.all():
        assert check_against_object_info(workflow.graph(), object_info) == [], workflow.name


def test_every_mapping_fits_its_node_inputs(shipped: Catalog, object_info: dict[str, Any]) -> None:
    for workflow in shipped.all():
        graph = workflow.graph()
        for param in workflow.mapping.values():
            for target in param.targets():
                assert target.input_name in graph[target.node_id]["inputs"], (workflow.name, param.name)
        assert check_parameters_against_object_info(workflow, object_info) == [], workflow.name


def test_rendered_shipped_graphs_stay_valid(shipped: Catalog, object_info: dict[str, Any]) -> None:
    for workflow in shipped.all():
        given = {p.name: "example.png" for p in workflow.parameters() if p.type == "image"}
        if any(p.name == "prompt" for p in workflow.parameters()):
            given["prompt"] = "a lighthouse at dusk"
        rendered = render(workflow, given)
        assert check_against_object_info(rendered.graph, object_info) == [], workflow.name


def test_parameters_describe_types_defaults_and_bounds(shipped: Catalog) -> None:
    params = {p.name: p for p in shipped.get("image_to_image").parameters()}
    assert params["image"].type == "image" and params["image"].required
    assert params["denoise"].type == "number" and (params["denoise"].minimum, params["denoise"].maximum) == (
        0,
        1,
    )
    assert params["seed"].default == -1
    assert "euler" in (params["sampler_name"].choices or [])
    assert params["prompt"].required and not params["steps"].required


def test_check_against_object_info_names_each_problem(object_info: dict[str, Any]) -> None:
    graph = copy.deepcopy(TINY_GRAPH)
    graph["4"]["inputs"]["width"] = 8  # below EmptyLatentImage's minimum of 16
    graph["5"]["inputs"]["positive"] = ["4", 0]  # a LATENT where CONDITIONING belongs
    graph["6"]["inputs"]["vae"] = ["1", 3]  # CheckpointLoaderSimple has 3 outputs
    graph["3"]["inputs"]["txt"] = graph["3"]["inputs"].pop("text")
    graph["8"] = {"class_type": "NoSuchNode", "inputs": {}}
    problems = "\n".join(check_against_object_info(graph, object_info))
    assert "node 4 (EmptyLatentImage).width: 8 is below the node's minimum 16" in problems
    assert "node 5 (KSampler).positive: expects CONDITIONING but node 4 output 0 is LATENT" in problems
    assert "node 6 (VAEDecode).vae: links to output 3 of node 1, which has 3 outputs" in problems
    assert "node 3 (CLIPTextEncode): unknown input 'txt'" in problems
    assert "node 3 (CLIPTextEncode): required input 'text' missing" in problems
    assert "node 8: unknown class_type 'NoSuchNode'" in problems


def test_check_parameters_flags_bounds_beyond_the_node(object_info: dict[str, Any], tmp_path: Path) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"steps": {"node_id": "5", "input_name": "steps", "maximum": 20000}})
    config = load_config(write_config(tmp_path / "config.yaml", tiny_task_types()))
    workflow = load_catalog(config, workflows_dir=wf_dir).get("text_to_image")
    problems = check_parameters_against_object_info(workflow, object_info)
    assert problems == [
        "steps -> node 5.steps: minimum None is below the node's minimum 1",
        "steps -> node 5.steps: maximum 20000 is above the node's maximum 10000",
    ]


def _load(tmp_path: Path, mapping: dict[str, Any], **extra: Any) -> Catalog:
    wf_dir = tiny_workflow_dir(tmp_path, mapping)
    config = load_config(write_config(tmp_path / "config.yaml", tiny_task_types(**extra)))
    return load_catalog(config, workflows_dir=wf_dir)


def test_mapping_to_a_missing_node_stops_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        _load(tmp_path, {"prompt": {"node_id": "99", "input_name": "text"}})
    message = str(caught.value)
    assert "task_types.text_to_image.workflows.tiny.parameter_mapping.prompt" in message
    assert "node_id '99' is not in the graph" in message


def test_mapping_to_a_missing_input_stops_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"prompt: node 2 \(CLIPTextEncode\) has no input 'txt'"):
        _load(tmp_path, {"prompt": {"node_id": "2", "input_name": "txt"}})


def test_mapping_to_a_link_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="input 'clip' of node 2 is a link"):
        _load(tmp_path, {"clip": {"node_id": "2", "input_name": "clip"}})


def test_default_outside_its_bounds_is_refused(tmp_path: Path) -> None:
    steps = {"node_id": "5", "input_name": "steps", "default_value": 500, "maximum": 100}
    with pytest.raises(CatalogError, match=r"parameter_mapping\.steps\.default_value: must be at most 100"):
        _load(tmp_path, {"steps": steps})


def test_misspelled_mapping_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"parameter_mapping\.steps: maximun: Extra inputs"):
        _load(tmp_path, {"steps": {"node_id": "5", "input_name": "steps", "maximun": 5}})


def test_missing_graph_file_is_named(tmp_path: Path) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"prompt": PROMPT})
    (wf_dir / "t2i" / "tiny.json").unlink()
    config = load_config(write_config(tmp_path / "config.yaml", tiny_task_types()))
    with pytest.raises(CatalogError, match=f"graph file not found: {wf_dir / 't2i' / 'tiny.json'}"):
        load_catalog(config, workflows_dir=wf_dir)


def test_bad_json_graph_is_named(tmp_path: Path) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"prompt": PROMPT})
    (wf_dir / "t2i" / "tiny.json").write_text('{"1": {', encoding="utf-8")
    config = load_config(write_config(tmp_path / "config.yaml", tiny_task_types()))
    with pytest.raises(CatalogError, match=r"workflows\.tiny\.workflow_file: .*tiny\.json is not valid JSON"):
        load_catalog(config, workflows_dir=wf_dir)


def test_unknown_default_workflow_is_named(tmp_path: Path) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"prompt": PROMPT})
    task_types = tiny_task_types()
    task_types["text_to_image"]["default_workflow"] = "fancy"
    config = load_config(write_config(tmp_path / "config.yaml", task_types))
    with pytest.raises(CatalogError, match=r"task_types\.text_to_image\.default_workflow: 'fancy'"):
        load_catalog(config, workflows_dir=wf_dir)


def test_unknown_names_list_the_known_ones(shipped: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"unknown workflow 'nope' .*known: \['sd_basic'\]"):
        shipped.get("text_to_image", "nope")
    with pytest.raises(CatalogError, match=r"unknown task type 'music'; known: \['image_to_image'"):
        shipped.get("music")


def test_inline_mapping_overrides_the_mapping_file(tmp_path: Path) -> None:
    file_steps = {"node_id": "5", "input_name": "steps", "default_value": 10, "maximum": 50}
    inline_steps = {"node_id": "5", "input_name": "steps", "default_value": 30, "maximum": 40}
    catalog = _load(
        tmp_path, {"steps": file_steps, "prompt": PROMPT}, parameter_mapping={"steps": inline_steps}
    )
    params = {p.name: p for p in catalog.get("text_to_image").parameters()}
    assert (params["steps"].default, params["steps"].maximum) == (30, 40)
    assert params["prompt"].default == "graph prompt"


def test_types_are_inferred_from_the_graph(tmp_path: Path) -> None:
    mapping = {
        "steps": {"node_id": "5", "input_name": "steps"},
        "cfg": {"node_id": "5", "input_name": "cfg"},
        "prompt": {"node_id": "2", "input_name": "text"},
    }
    params = {p.name: p for p in _load(tmp_path, mapping).get("text_to_image").parameters()}
    assert {name: str(p.type) for name, p in params.items()} == {
        "steps": "integer",
        "cfg": "number",
        "prompt": "string",
    }
    assert params["cfg"].default == 6.5


def test_seed_style_paths_relative_to_the_project_work(tmp_path: Path) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"prompt": PROMPT})
    task_types = tiny_task_types()
    task_types["text_to_image"]["workflows"]["tiny"]["workflow_file"] = "workflows/t2i/tiny.json"
    config = load_config(write_config(tmp_path / "config.yaml", task_types))
    assert (
        load_catalog(config, workflows_dir=wf_dir).get("text_to_image").graph_path == wf_dir / "t2i/tiny.json"
    )


def test_adding_a_workflow_is_a_graph_a_mapping_and_a_config_line(tmp_path: Path) -> None:
    wf_dir = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS_DIR, wf_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (wf_dir / "text_to_image" / "tiny.json").write_text(json.dumps(TINY_GRAPH), encoding="utf-8")
    mapping = {"parameter_mapping": {"prompt": PROMPT, "steps": {"node_id": "5", "input_name": "steps"}}}
    (wf_dir / "text_to_image" / "tiny.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    raw = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    raw["task_types"]["text_to_image"]["workflows"]["tiny"] = {
        "workflow_file": "text_to_image/tiny.json",
        "mapping_file": "text_to_image/tiny.yaml",
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")

    catalog = load_catalog(load_config(config_path), workflows_dir=wf_dir)
    assert sorted(w.name for w in catalog.workflows("text_to_image")) == ["sd_basic", "tiny"]
    rendered = render(catalog.get("text_to_image", "tiny"), {"prompt": "a red fox", "steps": 3})
    assert rendered.graph["2"]["inputs"]["text"] == "a red fox"
    assert rendered.graph["5"]["inputs"]["steps"] == 3


def test_get_catalog_reads_the_configured_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf_dir = tiny_workflow_dir(tmp_path, {"prompt": PROMPT})
    config_path = write_config(tmp_path / "config.yaml", tiny_task_types())
    monkeypatch.setenv("COMFYWS_CONFIG_PATH", str(config_path))
    monkeypatch.setenv("COMFYWS_WORKFLOWS_DIR", str(wf_dir))
    for cached in (get_settings, get_config, get_catalog):
        cached.cache_clear()
    try:
        catalog = get_catalog()
        assert catalog is get_catalog()
        assert catalog.get("text_to_image").graph_path == wf_dir / "t2i" / "tiny.json"
    finally:
        for cached in (get_settings, get_config, get_catalog):
            cached.cache_clear()
