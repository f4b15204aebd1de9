"""run()/follow() against a replaying node over a real WebSocket: success, drops, lost prompts, hangs, failures."""

from __future__ import annotations

import uuid

import pytest

from tests.workers.comfyui_support import ReplayNode, load_trace, replay_node
from workers.comfyui import (
    Event,
    Executed,
    Executing,
    ExecutionFailed,
    FileRef,
    ImageFormat,
    NodeTimeout,
    Preview,
    Progress,
    PromptInterrupted,
    PromptLost,
)

SD_GRAPH = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-random-sd15.safetensors"}}
}
SD_IMAGE = FileRef(filename="trace_tiny_sd_00001_.png", subfolder="", type="output")


class Recorder:
    """Collects the events run() hands to on_event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def new_id() -> str:
    return str(uuid.uuid4())


def recorded_binary_frames(trace_name: str) -> int:
    return sum(1 for entry in load_trace(trace_name)["ws"] if entry.get("kind") == "binary")


async def test_run_follows_trace_12_to_its_result() -> None:
    node, seen = ReplayNode("12_tiny_sd_first_run", new_id()), Recorder()
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen)

    assert node.log == ["ws_connect", "submit"], "the socket must be open before the prompt is queued"
    assert node.first_messages[0] == {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    assert node.socket_client_ids[0] == node.owner_client_id, "prompt must be owned by the socket's clientId"
    assert [e.value for e in seen.of(Progress)] == list(range(1, 13))  # type: ignore[attr-defined]
    assert [e.node for e in seen.of(Executing)] == ["1", "4", "3", "2", "5", "6", "7"]  # type: ignore[attr-defined]
    assert all(e.prompt_id == node.prompt_id for e in seen.events)
    assert result.status == "success" and result.files == [SD_IMAGE]
    assert result.outputs["7"].images == [SD_IMAGE] and result.cached_nodes == []
    assert result.execution_s == pytest.approx(1.382)


async def test_socket_drop_then_finished_meanwhile_reconciles_through_history() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id(), cut_after=30, after_cut="finish")
    seen = Recorder()
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen, poll_interval=5.0)

    assert len(node.socket_client_ids) == 2, "the client reconnects after the drop"
    assert 0 < len(seen.of(Progress)) < 12, "the drop happened mid-sampling"
    assert result.files == [SD_IMAGE] and result.execution_s == pytest.approx(1.382)


async def test_socket_drop_while_still_running_keeps_following_on_new_socket() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id(), cut_after=30, after_cut="resume")
    seen = Recorder()
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen, poll_interval=5.0)

    assert len(node.socket_client_ids) == 2
    assert [e.value for e in seen.of(Progress)] == list(range(1, 13))  # type: ignore[attr-defined]
    assert result.files == [SD_IMAGE]


async def test_node_restart_during_run_raises_prompt_lost() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id(), cut_after=30, after_cut="lose")
    async with replay_node(node) as client:
        with pytest.raises(PromptLost) as caught:
            await client.run(SD_GRAPH, prompt_id=node.prompt_id, poll_interval=5.0)
    assert caught.value.prompt_id == node.prompt_id


async def test_silent_node_with_running_prompt_raises_node_timeout() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id(), cut_after=12, drop=False)
    async with replay_node(node) as client:
        with pytest.raises(NodeTimeout):
            await client.run(SD_GRAPH, prompt_id=node.prompt_id, idle_timeout=0.3, poll_interval=0.1)


async def test_total_timeout_bounds_a_run_before_the_idle_timeout() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id(), cut_after=12, drop=False)
    async with replay_node(node) as client:
        with pytest.raises(NodeTimeout, match="not done after"):
            await client.run(SD_GRAPH, prompt_id=node.prompt_id, total_timeout=0.3, poll_interval=0.1)


async def test_execution_error_raises_execution_failed_with_earlier_outputs() -> None:
    node = ReplayNode("07_execution_error", new_id())
    async with replay_node(node) as client:
        with pytest.raises(ExecutionFailed) as caught:
            await client.run({}, prompt_id=node.prompt_id)
    error = caught.value
    assert (error.node_id, error.node_type, error.exception_type) == (
        "3",
        "LoadImage",
        "PIL.UnidentifiedImageError",
    )
    assert "cannot identify image file" in error.exception_message
    assert error.outputs["2"].images[0].filename == "trace_before_error_00001_.png"
    # A corrupt input fails on every node: not a node fault, and the job's error leads with ComfyUI's words.
    assert not error.node_fault
    assert error.node_message.startswith("PIL.UnidentifiedImageError: cannot identify image file")
    assert error.node_message.endswith("(in LoadImage 3)")


@pytest.mark.parametrize(("exception_type", "message", "node_fault"), [
    ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("RuntimeError", "CUDA error: an illegal memory access was encountered", True),
    ("SimulatedFailure", "Simulated failure injected at step 3/6", True),
    ("ValueError", "Invalid sampler name", False),
    ("FileNotFoundError", "[Errno 2] No such file or directory: 'models/loras/x.safetensors'", False),
])
def test_execution_errors_are_node_faults_only_when_the_machine_failed(
    exception_type: str, message: str, node_fault: bool
) -> None:
    error = ExecutionFailed(prompt_id="p", node_id="5", node_type="KSampler", exception_type=exception_type,
                            exception_message=message)
    assert error.node_fault is node_fault


async def test_interrupt_raises_prompt_interrupted() -> None:
    node = ReplayNode("14_tiny_sd_interrupt_ksampler", new_id())
    async with replay_node(node) as client:
        with pytest.raises(PromptInterrupted) as caught:
            await client.run(SD_GRAPH, prompt_id=node.prompt_id)
    assert (caught.value.node_id, caught.value.node_type) == ("5", "KSampler")


async def test_legacy_previews_are_attributed_to_the_running_prompt() -> None:
    node, seen = ReplayNode("16_tiny_sd_previews_legacy_no_feature_flags", new_id()), Recorder()
    async with replay_node(node) as client:
        await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen)
    previews = seen.of(Preview)
    assert len(previews) == recorded_binary_frames("16_tiny_sd_previews_legacy_no_feature_flags") == 4
    assert all(p.prompt_id == node.prompt_id and p.metadata is None for p in previews)  # type: ignore[attr-defined]
    assert previews[0].image_format == ImageFormat.JPEG  # type: ignore[attr-defined]


async def test_metadata_previews_carry_their_node() -> None:
    node, seen = ReplayNode("15_tiny_sd_previews_metadata", new_id()), Recorder()
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen)
    previews = seen.of(Preview)
    assert len(previews) == recorded_binary_frames("15_tiny_sd_previews_metadata") == 8
    assert {p.node for p in previews} == {"5"}  # type: ignore[attr-defined]
    assert result.files[0].filename == "trace_tiny_sd_00003_.png"


async def test_fully_cached_rerun_reports_cached_nodes_and_replayed_output() -> None:
    node, seen = ReplayNode("13_tiny_sd_cached_rerun", new_id()), Recorder()
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id, on_event=seen)
    assert result.cached_nodes == ["1", "2", "3", "4", "5", "6", "7"]
    assert [e.node for e in seen.of(Executed)] == ["7"]  # type: ignore[attr-defined]
    assert result.files[0].filename == "trace_tiny_sd_00002_.png"


async def test_follow_listens_under_the_prompts_own_client_id() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id())
    node.mark_submitted_by("worker-before-restart")
    async with replay_node(node) as client:
        result = await client.follow(node.prompt_id)
    assert node.socket_client_ids == ["worker-before-restart"]
    assert result.files == [SD_IMAGE]


async def test_run_of_an_already_finished_prompt_does_not_submit_again() -> None:
    node = ReplayNode("12_tiny_sd_first_run", new_id())
    node.finished = True
    async with replay_node(node) as client:
        result = await client.run(SD_GRAPH, prompt_id=node.prompt_id)
    assert "submit" not in node.log
    assert result.files == [SD_IMAGE]
