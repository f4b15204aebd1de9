"""Validation on the simulated node answers with the same 400 bodies a real node recorded (trace 06, 06b)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fixtures.simnode import SimNode
from tests.simnode.helpers import TRACES, sd_graph, wait_history

NONDETERMINISTIC = {"traceback"}


def _trace_cases() -> list[tuple[str, dict[str, Any], int, dict[str, Any]]]:
    trace = json.loads((TRACES / "06_validation_errors_400.json").read_text())
    requests = [h["request"]["json"] for h in trace["http"] if h["request"]["method"] == "POST"]
    return [(r["case"], req, r["status"], r["body"]) for r, req in zip(trace["results"], requests, strict=True)]


def _assert_same_error(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert {k: got[k] for k in ("type", "message", "details")} == {k: want[k] for k in ("type", "message", "details")}
    assert set(got["extra_info"]) == set(want["extra_info"])
    for key, value in want["extra_info"].items():
        if key not in NONDETERMINISTIC:
            assert got["extra_info"][key] == value, key
    if "traceback" in want["extra_info"]:
        assert isinstance(got["extra_info"]["traceback"], list)


def _assert_same_body(got: dict[str, Any], want: dict[str, Any]) -> None:
    _assert_same_error(got["error"], want["error"])
    assert set(got["node_errors"]) == set(want["node_errors"])
    for node_id, entry in want["node_errors"].items():
        mine = got["node_errors"][node_id]
        assert mine["class_type"] == entry["class_type"]
        assert sorted(mine["dependent_outputs"]) == sorted(entry["dependent_outputs"])
        assert len(mine["errors"]) == len(entry["errors"])
        for mine_error, want_error in zip(mine["errors"], entry["errors"], strict=True):
            _assert_same_error(mine_error, want_error)


@pytest.mark.parametrize(("case", "request_body", "status", "body"), _trace_cases(), ids=lambda v: str(v)[:40])
def test_rejections_match_the_recorded_bodies(
    shared_node: SimNode, case: str, request_body: dict[str, Any], status: int, body: dict[str, Any]
) -> None:
    response = httpx.post(f"{shared_node.url}/prompt", json=request_body)
    assert response.status_code == status, case
    _assert_same_body(response.json(), body)


def test_unknown_checkpoint_is_value_not_in_list(shared_node: SimNode) -> None:
    response = httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph(ckpt="nope.safetensors")})
    assert response.status_code == 400
    error = response.json()["node_errors"]["1"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == (
        "ckpt_name: 'nope.safetensors' not in "
        "['sd15-tiny.safetensors', 'sdxl-base.safetensors', 'svd.safetensors', 'tiny-random-sd15.safetensors']"
    )
    assert response.json()["node_errors"]["1"]["dependent_outputs"] == ["7"]


def test_checkpoint_list_follows_the_flag(simnode_factory: Any) -> None:
    node = simnode_factory(checkpoints="only.safetensors")
    assert httpx.get(f"{node.url}/models/checkpoints").json() == ["only.safetensors"]
    info = httpx.get(f"{node.url}/object_info/CheckpointLoaderSimple").json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["only.safetensors"]
    assert httpx.post(f"{node.url}/prompt", json={"prompt": sd_graph(ckpt="only.safetensors")}).status_code == 200


def test_sampler_steps_out_of_range(shared_node: SimNode) -> None:
    response = httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph(steps=0)})
    assert response.status_code == 400
    error = response.json()["node_errors"]["5"]["errors"][0]
    assert (error["type"], error["message"]) == ("value_smaller_than_min", "Value 0 smaller than min of 1")


async def test_partial_failure_runs_only_the_valid_branch(shared_node: SimNode) -> None:
    trace = json.loads((TRACES / "06b_partial_validation_failure_200.json").read_text())
    recorded = trace["http"][0]
    async with httpx.AsyncClient(base_url=shared_node.url) as client:
        response = await client.post("/prompt", json=recorded["request"]["json"])
        assert response.status_code == 200
        assert response.json()["node_errors"] == recorded["response"]["json"]["node_errors"]
        entry = await wait_history(client, response.json()["prompt_id"])
    assert entry["prompt"][4] == ["2"]
    assert list(entry["outputs"]) == ["2"]
    assert entry["outputs"]["2"]["images"][0]["filename"] == "trace_partial_ok_00001_.png"


def test_number_grows_even_for_rejected_prompts(shared_node: SimNode) -> None:
    before = shared_node.state()
    first = httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph()}).json()["number"]
    assert httpx.post(f"{shared_node.url}/prompt", json={"client_id": "x"}).status_code == 400
    assert httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph(steps=0)}).status_code == 400
    assert httpx.post(f"{shared_node.url}/prompt", json={"prompt": sd_graph()}).json()["number"] == first + 3
    state = shared_node.state()
    assert state["prompts_received"] - before["prompts_received"] == 4
    assert state["prompts_rejected"] - before["prompts_rejected"] == 2
