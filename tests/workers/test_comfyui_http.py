"""HTTP side of the client against recorded node answers (httpx.MockTransport) and a real refused socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfyws.simnode.config import DEFAULT_OBJECT_INFO
from tests.workers.comfyui_support import load_trace, trace_names
from workers.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    FileRef,
    HistoryEntry,
    NodeSchema,
    NodeUnavailable,
    OutputMissing,
    PromptRejected,
    QueueState,
    SubmitResult,
    SystemStats,
)

BASE = "http://node.test"
# Endpoints the client deliberately does not wrap (front-end helpers, not needed to run prompts).
UNWRAPPED = (
    "/embeddings",
    "/models",
    "/extensions",
    "/view_metadata",
    "/history?",
    "GET /prompt",
    "POST /history",
)
Handler = Callable[[httpx.Request], httpx.Response]


def recorded_response(call: dict[str, Any]) -> httpx.Response:
    response = call["response"]
    if "json" in response:
        return httpx.Response(response["status"], json=response["json"])
    body = bytes.fromhex(response.get("body_first_32_bytes_hex", ""))
    return httpx.Response(response["status"], content=body)


def client_for(handler: Handler) -> ComfyUIClient:
    return ComfyUIClient(BASE, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)), client_id="w1")


def replaying(call: dict[str, Any], sent: list[httpx.Request] | None = None) -> ComfyUIClient:
    """A client whose node answers `call` as recorded, and idempotency probes with 'unknown prompt'."""
    target = (call["request"]["method"], call["request"]["path"])

    def handler(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        path = request.url.raw_path.decode()
        if (request.method, path) == target or (request.method, request.url.path) == target:
            return recorded_response(call)
        if request.url.path.startswith("/history/"):
            return httpx.Response(200, json={})
        if request.url.path == "/queue" and request.method == "GET":
            return httpx.Response(200, json={"queue_running": [], "queue_pending": []})
        return httpx.Response(200)

    return client_for(handler)


async def call_client(client: ComfyUIClient, call: dict[str, Any]) -> Any:
    """Invoke the client method that issues this recorded request."""
    method, path = call["request"]["method"], call["request"]["path"]
    query = httpx.URL(path).params
    route = httpx.URL(path).path
    calls: dict[tuple[str, str], Callable[[], Awaitable[Any]]] = {
        ("GET", "/system_stats"): client.system_stats,
        ("GET", "/queue"): client.queue,
        ("GET", "/features"): client.features,
        ("GET", "/models/checkpoints"): client.checkpoints,
        ("POST", "/interrupt"): lambda: client.interrupt(call["request"].get("json", {}).get("prompt_id")),
        ("POST", "/queue"): lambda: client.delete_from_queue(["x"]),
        ("POST", "/free"): client.free,
        ("POST", "/upload/image"): lambda: client.upload_image(b"png", "trace_upload.png"),
        ("POST", "/prompt"): lambda: client.submit(
            call["request"].get("json", {}).get("prompt", {}), prompt_id="p1"
        ),
    }
    if (method, route) in calls:
        return await calls[(method, route)]()
    if route.startswith("/object_info/"):
        return await client.object_info(route.removeprefix("/object_info/"))
    if route.startswith("/history/"):
        return await client.history(route.removeprefix("/history/"))
    if route == "/view":
        ref = FileRef(filename=query["filename"], subfolder=query["subfolder"], type=query["type"])
        return await client.view(ref)
    raise AssertionError(f"no client method for {method} {path}")


def recorded_calls() -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for name in trace_names():
        for call in load_trace(name)["http"]:
            label = f"{call['request']['method']} {call['request']['path']}"
            if not any(skip in label for skip in UNWRAPPED):
                calls.append((f"{name}:{call['label']}", call))
    return calls


@pytest.mark.parametrize(("label", "call"), recorded_calls(), ids=[label for label, _ in recorded_calls()])
async def test_every_recorded_answer_becomes_a_typed_result_or_error(
    label: str, call: dict[str, Any]
) -> None:
    try:
        result = await call_client(replaying(call), call)
    except (PromptRejected, OutputMissing):
        assert call["response"]["status"] in (200, 400, 404)
        return
    assert (
        result is None
        or isinstance(
            result, SystemStats | QueueState | HistoryEntry | SubmitResult | FileRef | bytes | list | dict
        )
        or type(result).__module__.startswith("workers.comfyui")
    )


@pytest.mark.parametrize("result", load_trace("06_validation_errors_400")["results"], ids=lambda r: r["case"])
async def test_validation_400_becomes_prompt_rejected(result: dict[str, Any]) -> None:
    client = client_for(
        lambda r: httpx.Response(400, json=result["body"]) if r.method == "POST" else empty(r)
    )
    with pytest.raises(PromptRejected) as caught:
        await client.submit({"1": {}}, prompt_id="p1")
    rejected = caught.value
    assert rejected.error_type == result["body"]["error"]["type"]
    assert set(rejected.node_errors) == set(result["body"]["node_errors"])
    for node_id, node_error in result["body"]["node_errors"].items():
        assert f"node {node_id} ({node_error['class_type']})" in rejected.summary
    assert not isinstance(rejected, NodeUnavailable), "a rejected graph must not be retried"


async def test_rejection_summary_names_node_and_input() -> None:
    body = load_trace("06_validation_errors_400")["results"][1]["body"]
    client = client_for(lambda r: httpx.Response(400, json=body) if r.method == "POST" else empty(r))
    with pytest.raises(
        PromptRejected, match="node 2 \\(ImageInvert\\) input 'image': Required input is missing"
    ):
        await client.submit({}, prompt_id="p1")


async def test_partial_validation_200_is_rejected_and_the_partial_run_stopped() -> None:
    call = load_trace("06b_partial_validation_failure_200")["http"][0]
    sent: list[httpx.Request] = []
    with pytest.raises(PromptRejected) as caught:
        await replaying(call, sent).submit({}, prompt_id="97ba0f23-759f-40dd-842f-840dcacb63af")
    assert set(caught.value.node_errors) == {"3"}
    assert caught.value.node_errors["3"].errors[0].type == "value_smaller_than_min"
    posts = {
        r.url.path: json.loads(r.content) for r in sent if r.method == "POST" and r.url.path != "/prompt"
    }
    assert posts["/queue"] == {"delete": ["97ba0f23-759f-40dd-842f-840dcacb63af"]}
    assert posts["/interrupt"] == {"prompt_id": "97ba0f23-759f-40dd-842f-840dcacb63af"}


def empty(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/queue":
        return httpx.Response(200, json={"queue_running": [], "queue_pending": []})
    return httpx.Response(200, json={})


async def test_submit_sends_prompt_id_and_client_id_and_front() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            sent.append(json.loads(request.content))
            return httpx.Response(200, json={"prompt_id": "p1", "number": -3, "node_errors": {}})
        return empty(request)

    result = await client_for(handler).submit({"1": {"class_type": "X"}}, prompt_id="p1", front=True)
    assert result == SubmitResult(prompt_id="p1", number=-3)
    assert sent == [
        {"prompt": {"1": {"class_type": "X"}}, "client_id": "w1", "prompt_id": "p1", "front": True}
    ]


@pytest.mark.parametrize("where", ["history", "queue"])
async def test_submit_of_a_known_prompt_id_does_not_post_again(where: str) -> None:
    history = load_trace("02_run_success_invert")["http"][2]["response"]["json"]
    queue = load_trace("08_interrupt")["http"][1]["response"]["json"]
    prompt_id = next(iter(history)) if where == "history" else queue["queue_running"][0][1]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", "must not POST a prompt the node already has"
        if request.url.path.startswith("/history/"):
            return httpx.Response(200, json=history if where == "history" else {})
        return httpx.Response(200, json=queue)

    result = await client_for(handler).submit({}, prompt_id=prompt_id)
    assert result.already_known and result.number == (0 if where == "history" else 20)


async def test_submit_of_a_new_prompt_id_posts_without_looking_it_up() -> None:
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"prompt_id": "fresh", "number": 4, "node_errors": {}})

    result = await client_for(handler).submit({"1": {"class_type": "X"}}, prompt_id="fresh", new=True)
    assert result == SubmitResult(prompt_id="fresh", number=4) and requests == ["POST /prompt"]


async def test_history_of_run_with_animated_and_video_outputs() -> None:
    call = load_trace("05_animated_and_video_outputs")["http"][1]
    prompt_id = call["request"]["path"].removeprefix("/history/")
    entry = await replaying(call).history(prompt_id)
    assert entry is not None and entry.succeeded and entry.outputs["webp"].is_animated
    assert FileRef(filename="trace_vid_00001_.mp4", subfolder="video", type="output") in entry.files
    assert len([f for f in entry.files if f.type == "temp"]) == 4 and len(entry.files) == 7
    assert entry.duration_s == pytest.approx(0.030)


async def test_history_of_failed_and_interrupted_runs_names_the_failure() -> None:
    error_call, interrupt_call = (
        load_trace("07_execution_error")["http"][2],
        load_trace("08_interrupt")["http"][4],
    )
    failed = await replaying(error_call).history(error_call["request"]["path"].removeprefix("/history/"))
    stopped = await replaying(interrupt_call).history(
        interrupt_call["request"]["path"].removeprefix("/history/")
    )
    assert failed is not None and not failed.succeeded and failed.failure is not None
    assert failed.failure.node_id == "3" and "2" in failed.outputs
    assert stopped is not None and stopped.failure is not None and stopped.failure.node_type == "ImageBlur"


async def test_unknown_prompt_history_is_none() -> None:
    assert await client_for(empty).history("00000000-0000-0000-0000-000000000000") is None


async def test_queue_sorts_pending_into_run_order_and_knows_owners() -> None:
    call = next(
        c for c in load_trace("09_queue_delete")["http"] if c["label"].startswith("GET /queue: A running")
    )
    queue = await replaying(call).queue()
    assert [item.number for item in queue.pending] == [-24, 22, 23]
    assert queue.is_running(queue.running[0].prompt_id) and queue.size == 4
    assert queue.running[0].client_id


async def test_system_stats_devices_and_checkpoint_choices() -> None:
    stats_call, ckpt_call = (
        load_trace("01_endpoints_idle")["http"][0],
        load_trace("01b_endpoints_with_checkpoint")["http"][1],
    )
    stats = await replaying(stats_call).system_stats()
    assert stats.devices[0].vram_total == 25276514304 and stats.system.comfyui_version == "0.3.64"
    schemas = await replaying(ckpt_call).object_info("CheckpointLoaderSimple")
    assert schemas["CheckpointLoaderSimple"].choices("ckpt_name") == ["tiny-random-sd15.safetensors"]


def test_full_object_info_parses_all_478_classes() -> None:
    raw = json.loads(DEFAULT_OBJECT_INFO.read_text())  # the recorded GET /object_info the simnode serves
    schemas = {name: NodeSchema.model_validate(schema) for name, schema in raw.items()}
    assert len(schemas) == 478
    assert "euler" in (schemas["KSampler"].choices("sampler_name") or [])
    assert schemas["KSampler"].choices("steps") is None and schemas["SaveImage"].output_node


async def test_upload_reports_the_stored_name() -> None:
    call = load_trace("04_upload_loadimage_scale")["http"][1]
    ref = await replaying(call).upload_image(b"png", "trace_upload.png", overwrite=False)
    assert ref == FileRef(filename="trace_upload (1).png", subfolder="", type="input")


async def test_view_missing_file_raises_output_missing_and_download_writes_file(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 5000

    def handler(request: httpx.Request) -> httpx.Response:
        found = request.url.params["filename"].endswith("a.png")
        return httpx.Response(200, content=png) if found else httpx.Response(404)

    client = client_for(handler)
    with pytest.raises(OutputMissing):
        await client.view(FileRef(filename="does_not_exist.png"))
    path = await client.download(FileRef(filename="../../a.png"), tmp_path / "out")
    assert path == tmp_path / "out" / "a.png" and path.read_bytes() == png
    with pytest.raises(OutputMissing):
        await client.download(FileRef(filename="gone.png"), tmp_path / "out")


async def test_server_errors_are_node_unavailable() -> None:
    client = client_for(lambda r: httpx.Response(502))
    with pytest.raises(NodeUnavailable):
        await client.system_stats()
    with pytest.raises(ComfyUIError):
        await client_for(lambda r: httpx.Response(403)).queue()


async def test_refused_connection_is_node_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: a real refused connection.
    async with ComfyUIClient(f"http://127.0.0.1:{port}", timeout=2.0) as client:
        with pytest.raises(NodeUnavailable):
            await client.system_stats()
        with pytest.raises(NodeUnavailable):
            await client.run({}, prompt_id="p1")
