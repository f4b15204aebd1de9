"""Every recorded scenario of a real ComfyUI 0.3.64, replayed against the simulated node and compared structurally.

Each test starts a fresh simulated node set up like the recorded server (its checkpoint and preview method),
replays the scenario's preludes and then the scenario itself
(tests/simnode/replay.py), and compares message types, order, fields, value types and the values a client acts
on (tests/simnode/structure.py). What may still differ is listed in ALLOWED, each with the reason it is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.simnode import SimNode, start_simnode
from tests.simnode.replay import PRELUDES, SESSIONS, Replay, load, scenario_names
from tests.simnode.structure import differences

CHECKPOINT = "tiny-random-sd15.safetensors"
# The recorded server's steps took ~35 ms. Where an interrupt must land between the same two steps as in the
# recording (after step 3 of 200), a step takes longer so that a loaded test machine still gets it there.
STEP_DELAY = 0.04
SLOW_STEPS = {"14_tiny_sd_interrupt_ksampler": 0.25, "13a_tiny_sd_rerun_partially_cached": 0.25}
# Scenarios recorded on a server started with --preview-method latent2rgb.
WITH_PREVIEWS = {"01b_endpoints_with_checkpoint", "15_tiny_sd_previews_metadata",
                 "16_tiny_sd_previews_legacy_no_feature_flags"}
# Scenario 01 ran before the tiny checkpoint was put in place.
WITHOUT_CHECKPOINT = {"01_endpoints_idle"}

# Differences that remain, as regular expressions over `differences()` lines, each with why it is harmless.
ALLOWED: dict[str, str] = {
    # /system_stats: the simulator adds `simulated`, `node_name`, `platform` so that nobody mistakes it for a
    # real node, and reports a fake CUDA device (index 0) where the recording ran on the CPU (index null).
    r"GET /system_stats: \$\.json\.system\.(simulated|node_name|platform): extra": "says it is simulated",
    r"GET /system_stats: \$\.json\.devices\[0\]\.index: null recorded, int live": "a fake GPU, not a CPU",
    # The real node lists its web front end's extension scripts; the simulator serves no front end.
    r"GET /extensions: \$\.json: \d+ items recorded, 0 live": "no web front end on the simulator",
    # Without an ffmpeg binary on the test machine the simulator writes the video as an animated WEBP (clients
    # go by the Content-Type and the extension it reports); with ffmpeg it is an H.264 MP4 like the recording.
    r"GET /view \(images output of node savevid\): \$\.(content_type|magic): ": "no ffmpeg here",
}

# Scenarios where the real node's timing, not its protocol, fixed an order.
ORDER_FREE = {
    # Independent output branches run in the order of a Python set on a real node (hash-randomised per process).
    "05_animated_and_video_outputs": "the frames are compared as a multiset",
}
STATUS_RACE = {
    # Four prompts posted back to back: whether the node's worker takes A before B, C, D are queued is a race
    # (its `status` broadcasts interleave with them differently on each run); every other frame keeps its order.
    "09_queue_delete": "status broadcasts after the greeting are left out",
}


def _allowed(line: str) -> bool:
    return any(re.search(pattern, line) for pattern in ALLOWED)


@pytest.fixture
def node_for(tmp_path: Path) -> Iterator[Callable[[str], SimNode]]:
    """Starts a node set up like the server `name` was recorded on (stopped at teardown)."""
    started: list[SimNode] = []

    def start(name: str) -> SimNode:
        node = start_simnode(data_dir=tmp_path / "simnode", step_delay=SLOW_STEPS.get(name, STEP_DELAY),
                             checkpoints="" if name in WITHOUT_CHECKPOINT else CHECKPOINT,
                             preview_method="latent2rgb" if name in WITH_PREVIEWS else None)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.mark.parametrize("name", scenario_names())
async def test_simulated_node_replays_the_recorded_scenario(name: str, node_for: Callable[[str], SimNode]) -> None:
    node = node_for(name)
    live = await Replay(node.url).run(name)
    found = differences(load(name), live, ordered=name not in ORDER_FREE, statuses=name not in STATUS_RACE)
    assert [line for line in found if not _allowed(line)] == [], "\n".join(found)


def test_the_recording_sessions_name_every_scenario_once_and_preludes_come_first() -> None:
    order = [name for session in SESSIONS.values() for name in session]
    assert sorted(order) == scenario_names()
    for name, preludes in PRELUDES.items():
        session = next(s for s in SESSIONS.values() if name in s)
        assert [p for p in session[: session.index(name)] if p in preludes] == preludes, name
