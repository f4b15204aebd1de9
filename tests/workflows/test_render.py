"""Rendering: request values beat config defaults beat graph values; seeds, bounds, images and derived frames."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from comfyws.config import load_config
from tests.workflows.helpers import (
    CONFIG_PATH,
    WORKFLOWS_DIR,
    tiny_task_types,
    tiny_workflow_dir,
    write_config,
)
from workflows.catalog import Catalog, Workflow, load_catalog
from workflows.errors import ParameterError
from workflows.render import render


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(load_config(CONFIG_PATH), workflows_dir=WORKFLOWS_DIR)


@pytest.fixture
def tiny(tmp_path: Path) -> Workflow:
    mapping = {
        "prompt": {"node_id": "2", "input_name": "text"},  # no default: the graph's own value
        "negative_prompt": {"node_id": "3", "input_name": "text", "default_value": "config negative"},
        "steps": {"node_id": "5", "input_name": "steps", "default_value": 12, "minimum": 1, "maximum": 50},
        "seed": {"node_id": "5", "input_name": "seed", "default_value": -1, "minimum": 0},
    }
    wf_dir = tiny_workflow_dir(tmp_path, mapping)
    config = load_config(write_config(tmp_path / "config.yaml", tiny_task_types()))
    return load_catalog(config, workflows_dir=wf_dir).get("text_to_image")


def test_request_then_config_default_then_graph_value(tiny: Workflow) -> None:
    rendered = render(tiny, {"negative_prompt": "request negative"})
    inputs = rendered.graph
    assert inputs["2"]["inputs"]["text"] == "graph prompt"
    assert inputs["3"]["inputs"]["text"] == "request negative"
    assert inputs["5"]["inputs"]["steps"] == 12
    assert render(tiny, {}).graph["3"]["inputs"]["text"] == "config negative"
    assert render(tiny, {"prompt": "request prompt"}).graph["2"]["inputs"]["text"] == "request prompt"


def test_none_counts_as_not_given(tiny: Workflow) -> None:
    assert render(tiny, {"steps": None}).graph["5"]["inputs"]["steps"] == 12


def test_seed_minus_one_is_randomised_and_recorded(tiny: Workflow) -> None:
    first = render(tiny, {"seed": -1}, rng=random.Random(1))
    assert first.seed == first.values["seed"] == first.graph["5"]["inputs"]["seed"]
    assert first.seed is not None and 0 <= first.seed <= 2**63 - 1
    assert render(tiny, {}, rng=random.Random(1)).seed == first.seed  # absent = the default -1
    assert render(tiny, {}).seed != render(tiny, {}).seed
    assert render(tiny, {"seed": 1234}).graph["5"]["inputs"]["seed"] == 1234


@pytest.mark.parametrize(
    ("given", "field", "fragment"),
    [
        ({"steps": 51}, "steps", "must be at most 50, got 51"),
        ({"steps": 0}, "steps", "must be at least 1, got 0"),
        ({"steps": "many"}, "steps", "must be an integer"),
        ({"seed": -2}, "seed", "must be at least 0"),
        ({"prompt": 7}, "prompt", "must be a string"),
        ({"styel": "x"}, "styel", "unknown parameter"),
    ],
)
def test_bad_values_name_the_field(tiny: Workflow, given: dict, field: str, fragment: str) -> None:
    with pytest.raises(ParameterError) as caught:
        render(tiny, given)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_numeric_strings_from_forms_are_accepted(tiny: Workflow) -> None:
    assert render(tiny, {"steps": "30"}).graph["5"]["inputs"]["steps"] == 30


def test_choices_and_required_prompt(catalog: Catalog) -> None:
    workflow = catalog.get("text_to_image")
    with pytest.raises(ParameterError, match="sampler_name: must be one of"):
        render(workflow, {"prompt": "x", "sampler_name": "warp_drive"})
    with pytest.raises(ParameterError, match="prompt: is required") as caught:
        render(workflow, {})
    assert caught.value.field == "prompt"


def test_render_never_changes_the_catalog(catalog: Catalog) -> None:
    workflow = catalog.get("text_to_image")
    before = json.dumps(workflow.graph(), sort_keys=True)
    rendered = render(workflow, {"prompt": "a boat", "width": 640})
    rendered.graph["4"]["inputs"]["width"] = 1
    assert json.dumps(workflow.graph(), sort_keys=True) == before


def test_image_parameters_carry_node_side_names(catalog: Catalog) -> None:
    rendered = render(
        catalog.get("image_to_image"), {"image": "upload_ab12.png", "prompt": "oil", "denoise": 0.3}
    )
    assert rendered.input_images == ["image"]
    assert rendered.graph["2"]["inputs"]["image"] == "upload_ab12.png"
    assert rendered.graph["7"]["inputs"]["denoise"] == 0.3
    with pytest.raises(ParameterError, match="image: is required"):
        render(catalog.get("image_to_image"), {"prompt": "oil"})
    with pytest.raises(ParameterError, match="denoise: must be at most 1"):
        render(catalog.get("image_to_image"), {"image": "a.png", "prompt": "oil", "denoise": 1.5})


def test_video_frames_follow_duration_times_fps(catalog: Catalog) -> None:
    workflow = catalog.get("image_to_video")
    rendered = render(workflow, {"image": "start.png", "duration": 2.5, "fps": 5})
    conditioning, saver = rendered.graph["3"]["inputs"], rendered.graph["7"]["inputs"]
    assert conditioning["video_frames"] == 13 and rendered.values["video_frames"] == 13
    assert conditioning["fps"] == 5 and isinstance(conditioning["fps"], int)
    assert saver["fps"] == 5.0 and isinstance(saver["fps"], float)
    capped = render(workflow, {"image": "start.png", "duration": 30, "fps": 30})  # the seed's example request
    assert capped.graph["3"]["inputs"]["video_frames"] == 48


def test_sdxl_size_and_prompt_fan_out(catalog: Catalog) -> None:
    rendered = render(catalog.get("text_to_image_sdxl"), {"prompt": "a castle", "width": 832, "height": 1216})
    encoder = rendered.graph["2"]["inputs"]
    assert (encoder["text_g"], encoder["text_l"]) == ("a castle", "a castle")
    assert (encoder["width"], encoder["target_width"], rendered.graph["4"]["inputs"]["width"]) == (
        832,
        832,
        832,
    )
    assert (encoder["height"], encoder["target_height"]) == (1216, 1216)
