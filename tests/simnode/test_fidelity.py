"""Behaviour of a real ComfyUI 0.3.64 that the recordings imply but do not replay: the cache's keys, POST /free,
the reported version and checkpoint metadata."""

from __future__ import annotations

from typing import Any

import httpx
from packaging.version import Version

from tests.fixtures.simnode import SimNode
from tests.simnode.helpers import connect, new_client_id, record_until_done, sd_graph, wait_history
from tests.simnode.replay import load


async def _run(node: SimNode, graph: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(execution_cached nodes, history entry) of one run."""
    client_id = new_client_id()
    ws = await connect(node.ws_url, client_id, metadata=False)
    async with httpx.AsyncClient(base_url=node.url) as client:
        response = await client.post("/prompt", json={"prompt": graph, "client_id": client_id})
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        recorder = await record_until_done(ws, prompt_id)
        entry = await wait_history(client, prompt_id)
    await ws.close()
    return recorder.of("execution_cached")[0]["nodes"], entry


def _renumbered(graph: dict[str, Any], shift: int) -> dict[str, Any]:
    """The same graph with every node id moved by `shift` (links follow)."""
    def move(value: Any) -> Any:
        return [str(int(value[0]) + shift), value[1]] if isinstance(value, list) else value

    return {str(int(node_id) + shift): {**node, "inputs": {k: move(v) for k, v in node["inputs"].items()}}
            for node_id, node in graph.items()}


async def test_the_cache_is_keyed_by_inputs_so_renumbered_nodes_still_hit_it(simnode: SimNode) -> None:
    graph = sd_graph(seed=5, steps=3, prefix="renumbered")
    await _run(simnode, graph)
    cached, entry = await _run(simnode, _renumbered(graph, 100))
    assert sorted(cached) == sorted(_renumbered(graph, 100))
    assert entry["status"]["status_str"] == "success"


async def test_post_free_with_free_memory_drops_the_cache(simnode: SimNode) -> None:
    graph = sd_graph(seed=6, steps=3, prefix="freed")
    _, first = await _run(simnode, graph)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        assert (await client.post("/free", json={"unload_models": True})).status_code == 200
        cached, _ = await _run(simnode, graph)
        assert sorted(cached) == sorted(graph)  # unloading models alone keeps the cache
        assert (await client.post("/free", json={"unload_models": True, "free_memory": True})).status_code == 200
    cached, again = await _run(simnode, graph)
    assert cached == []
    assert again["outputs"]["7"] != first["outputs"]["7"]  # the sampler ran again and wrote a new file


async def test_an_interrupted_run_leaves_no_stale_cache_behind(simnode: SimNode) -> None:
    """Seed 42, then seed 7 interrupted, then seed 42 again: the sampler runs again (trace 13a)."""
    await _run(simnode, sd_graph(seed=42, steps=3))
    simnode.control(hang_next=1)
    client_id = new_client_id()
    ws = await connect(simnode.ws_url, client_id, metadata=False)
    async with httpx.AsyncClient(base_url=simnode.url) as client:
        response = await client.post("/prompt", json={"prompt": sd_graph(seed=7, steps=3), "client_id": client_id})
        prompt_id = response.json()["prompt_id"]
        while True:  # the hang holds the sampler after its second step
            frame = await ws.recv()
            if isinstance(frame, str) and '"progress"' in frame and '"value": 2' in frame:
                break
        await client.post("/interrupt", json={"prompt_id": prompt_id})
        assert (await record_until_done(ws, prompt_id)).of("execution_interrupted")
    await ws.close()
    cached, _ = await _run(simnode, sd_graph(seed=42, steps=3))
    assert sorted(cached) == ["1", "2", "3", "4"]


def test_system_stats_reports_a_parseable_comfyui_version_and_says_it_is_simulated(shared_node: SimNode) -> None:
    recorded = load("01_endpoints_idle")["http"][0]["response"]["json"]["system"]["comfyui_version"]
    system = httpx.get(f"{shared_node.url}/system_stats").json()["system"]
    assert Version(system["comfyui_version"]) == Version(recorded)
    assert system["simulated"] is True


async def test_checkpoint_metadata_answers_for_known_checkpoints_only(shared_node: SimNode) -> None:
    async with httpx.AsyncClient(base_url=shared_node.url) as client:
        known = await client.get("/view_metadata/checkpoints", params={"filename": "sd15-tiny.safetensors"})
        assert known.status_code == 200 and isinstance(known.json(), dict) and known.json()
        missing = await client.get("/view_metadata/checkpoints", params={"filename": "nope.safetensors"})
        assert missing.status_code == 404 and missing.content == b""
