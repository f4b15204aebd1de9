"""A full run over HTTP + WebSocket produces the recorded message sequence, previews and real files."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from tests.fixtures.simnode import SimNode
from tests.simnode.helpers import (
    TRACES,
    connect,
    new_client_id,
    parse_preview,
    record_until_done,
    sd_graph,
    wait_history,
)


async def _run(node: SimNode, prompt: dict[str, Any], *, metadata: bool) -> tuple[str, Any]:
    client_id = new_client_id()
    ws = await connect(node.ws_url, client_id, metadata=metadata)
    async with httpx.AsyncClient(base_url=node.url) as client:
        response = await client.post("/prompt", json={"prompt": prompt, "client_id": client_id})
        assert response.status_code == 200, response.text
        prompt_id = response.json()["prompt_id"]
        recorder = await record_until_done(ws, prompt_id)
    await ws.close()
    return prompt_id, recorder


# The recorded message sequences themselves (traces 12-16 among them) are compared in test_replay.py.


async def test_progress_and_preview_frames(simnode_factory: Callable[..., SimNode]) -> None:
    node = simnode_factory(preview_method="latent2rgb")
    prompt_id, run = await _run(node, sd_graph(steps=5, seed=1), metadata=True)
    assert [(p["value"], p["max"], p["node"]) for p in run.of("progress")] == [(i, 5, "5") for i in range(1, 6)]
    sample = (TRACES / "sample_ws_frame_type4.bin").read_bytes()
    _, sample_meta, _ = parse_preview(sample)
    colours = set()
    for frame in run.binaries():
        event, meta, image = parse_preview(frame)
        assert event == 4 and meta is not None and set(meta) == set(sample_meta)
        assert (meta["prompt_id"], meta["node_id"], meta["image_type"]) == (prompt_id, "5", "image/jpeg")
        assert image[:3] == b"\xff\xd8\xff"
        colours.add(Image.open(io.BytesIO(image)).convert("RGB").getpixel((0, 0)))
    assert len(run.binaries()) == 5 and len(colours) > 1
    _, legacy = await _run(node, sd_graph(steps=3, seed=2), metadata=False)
    frames = [parse_preview(f) for f in legacy.binaries()]
    assert [(e, m) for e, m, _ in frames] == [(1, None)] * 3
    assert legacy.binaries()[0][:8] == (TRACES / "sample_ws_frame_type1.bin").read_bytes()[:8]


async def test_history_view_and_deterministic_pixels(shared_node: SimNode) -> None:
    async with httpx.AsyncClient(base_url=shared_node.url) as client:
        pixels = []
        for seed in (10, 11, 10):
            graph = sd_graph(seed=seed, width=80, height=40, steps=2, prefix=f"px{seed}")
            prompt_id = (await client.post("/prompt", json={"prompt": graph})).json()["prompt_id"]
            entry = await wait_history(client, prompt_id)
            assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
            assert [m[0] for m in entry["status"]["messages"]] == [
                "execution_start", "execution_cached", "execution_success"]
            assert entry["prompt"][:2] == [entry["prompt"][0], prompt_id] and entry["prompt"][4] == ["7"]
            assert entry["meta"]["7"]["real_node_id"] == "7"
            image = entry["outputs"]["7"]["images"][0]
            view = await client.get("/view", params=image)
            assert view.status_code == 200 and view.headers["content-type"] == "image/png"
            picture = Image.open(io.BytesIO(view.content))
            assert picture.size == (80, 40)
            pixels.append(picture.convert("RGB").tobytes())
        assert pixels[0] != pixels[1] and pixels[0] == pixels[2]
        missing = await client.get("/view", params={"filename": "nope.png", "subfolder": "", "type": "output"})
        assert missing.status_code == 404 and missing.content == b""


async def test_identical_rerun_is_fully_cached(shared_node: SimNode) -> None:
    graph = sd_graph(seed=77, steps=4, prefix="cached")
    _, first = await _run(shared_node, graph, metadata=False)
    _, again = await _run(shared_node, graph, metadata=False)
    assert again.of("execution_cached")[0]["nodes"] == list(graph)
    assert again.events() == ["status", "status", "execution_start", "execution_cached", "executed",
                              "progress_state", "execution_success", "status", "executing"]
    assert again.of("executed")[0]["output"] == first.of("executed")[0]["output"]


async def test_animated_outputs_upload_and_preview(shared_node: SimNode) -> None:
    async with httpx.AsyncClient(base_url=shared_node.url) as client:
        png = io.BytesIO()
        Image.new("RGB", (40, 30), (1, 2, 3)).save(png, format="PNG")
        files = {"image": ("up.png", png.getvalue(), "image/png")}
        assert (await client.post("/upload/image", files=files)).json() == {
            "name": "up.png", "subfolder": "", "type": "input"}
        other = {"image": ("up.png", b"different bytes", "image/png")}
        assert (await client.post("/upload/image", files=other)).json()["name"] == "up (1).png"
        assert (await client.post("/upload/image", files=files)).json()["name"] == "up.png"
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "up.png"}},
            "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim",
                  "fps": 4.0, "lossless": False, "quality": 80, "method": "default"}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
        prompt_id = (await client.post("/prompt", json={"prompt": graph})).json()["prompt_id"]
        entry = await wait_history(client, prompt_id)
        webp = entry["outputs"]["2"]
        assert webp["animated"] == [True] and webp["images"][0]["filename"].endswith(".webp")
        view = await client.get("/view", params=webp["images"][0])
        assert view.headers["content-type"] == "image/webp"
        assert getattr(Image.open(io.BytesIO(view.content)), "n_frames", 1) > 1
        preview = entry["outputs"]["3"]["images"][0]
        assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
        assert (await client.get("/view", params=preview)).status_code == 200


async def test_a_node_started_without_a_preview_method_sends_progress_but_no_previews(shared_node: SimNode) -> None:
    _, run = await _run(shared_node, sd_graph(steps=4, seed=3), metadata=True)
    assert [(p["value"], p["max"]) for p in run.of("progress")] == [(i, 4) for i in range(1, 5)]
    assert run.binaries() == []
