"""Each generation type end to end: API -> Prefect server -> in-process worker -> flow -> simulated node -> files."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def token(stack: Stack) -> Iterator[str]:
    """A client of this module, with a second node beside the stack's sim-1 (removed again afterwards)."""
    second = stack.add_simnode("sim-2", step_delay=0.01)
    yield stack.new_client_token()
    stack.remove_simnode(second)


def _result_bytes(stack: Stack, token: str, task: dict, index: int = 0) -> bytes:
    with stack.http(token) as http:
        response = http.get(task["results"][index]["url"])
    assert response.status_code == 200, response.text
    return response.content


def _upload_png(stack: Stack, token: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 90)).save(buf, "PNG")
    with stack.http(token) as http:
        response = http.post("/api/v2/upload/image", files={"file": ("in.png", buf.getvalue(), "image/png")})
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


def test_text_to_image_stores_a_real_png_with_its_checksum(stack: Stack, token: str) -> None:
    task = stack.submit(token, "text-to-image", {"prompt": "a lighthouse at dusk", "width": 320, "height": 256,
                                                  "steps": 4, "seed": 7})
    done = stack.wait_final(token, task["task_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0
    result = done["results"][0]
    data = _result_bytes(stack, token, done)
    assert hashlib.sha256(data).hexdigest() == result["sha256"]
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.size == (320, 256)
    stored = list((stack.outputs_dir / task["task_id"]).iterdir())
    assert [p.name for p in stored] == [result["filename"]]


def test_a_finished_run_shows_its_results_in_the_prefect_ui(stack: Stack, token: str) -> None:
    task = stack.submit(token, "text-to-image", {"prompt": "a red kite", "width": 96, "height": 64, "steps": 2})
    job_id = task["task_id"]
    assert stack.wait_final(token, job_id)["status"] == "completed"

    def artifact() -> dict | None:
        found = httpx.post(f"{stack.prefect_url}/artifacts/filter",
                           json={"artifacts": {"key": {"any_": [f"job-{job_id}"]}}}).json()
        return found[0] if found else None

    markdown = wait_until(artifact, timeout=30, what="the job's artifact")["data"]
    assert f"/api/v2/tasks/{job_id}/results/0" in markdown  # a link to the file
    assert "](data:image/jpeg;base64," in markdown  # and a small preview of it
    run = httpx.post(f"{stack.prefect_url}/flow_runs/filter",
                     json={"flow_runs": {"name": {"any_": [f"job-{job_id}"]}}}).json()[0]
    final = wait_until(lambda: (r := httpx.get(f"{stack.prefect_url}/flow_runs/{run['id']}").json())
                       ["state_type"] == "COMPLETED" and r, timeout=30, what="the run to end Completed")
    assert final["flow_version"]  # recorded while the run went on, not before it started
    assert final["run_count"] == 1

    def tasks() -> dict[str, str] | None:
        found = httpx.post(f"{stack.prefect_url}/task_runs/filter",
                           json={"flow_runs": {"id": {"any_": [run["id"]]}}}).json()
        states = {t["name"].rsplit("-", 1)[0]: t["state_type"] for t in found}
        return states if len(states) == 4 and set(states.values()) == {"COMPLETED"} else None

    # The server records task runs in batches (deployments/prefect_server.py): late by a second, never lost.
    assert wait_until(tasks, timeout=15, what="the run's task runs") == {
        "prepare-job": "COMPLETED", "run-on-node": "COMPLETED", "store-results": "COMPLETED",
        "finish-job": "COMPLETED"}


def test_different_seeds_give_different_pictures_and_random_seed_is_recorded(stack: Stack, token: str) -> None:
    a = stack.submit(token, "text-to-image", {"prompt": "a cat", "steps": 2, "seed": 1, "width": 128, "height": 128})
    b = stack.submit(token, "text-to-image", {"prompt": "a cat", "steps": 2, "seed": -1, "width": 128, "height": 128})
    a, b = stack.wait_final(token, a["task_id"]), stack.wait_final(token, b["task_id"])
    assert a["status"] == b["status"] == "completed"
    assert b["seed"] not in (None, -1)
    assert a["results"][0]["sha256"] != b["results"][0]["sha256"]


def test_sdxl_image_to_image_and_image_to_video(stack: Stack, token: str) -> None:
    upload = _upload_png(stack, token)
    jobs = {
        "text-to-image-sdxl": stack.submit(token, "text-to-image-sdxl", {"prompt": "mountains", "steps": 2,
                                                                         "width": 512, "height": 512}),
        "image-to-image": stack.submit(token, "image-to-image", {"prompt": "oil painting", "image": upload,
                                                                 "steps": 2}),
        "image-to-video": stack.submit(token, "image-to-video", {"image": upload, "duration": 1, "fps": 4,
                                                                 "steps": 2}),
    }
    done = {kind: stack.wait_final(token, job["task_id"]) for kind, job in jobs.items()}
    for kind, task in done.items():
        assert task["status"] == "completed", (kind, task)
    video = done["image-to-video"]["results"][0]
    assert video["kind"] == "video"
    with Image.open(io.BytesIO(_result_bytes(stack, token, done["image-to-video"]))) as img:
        assert img.format == "WEBP" and getattr(img, "n_frames", 1) == 4


def test_a_rejected_graph_fails_once_and_is_not_retried(stack: Stack, token: str) -> None:
    for node in stack.simnodes:
        node.control(reject_all=True)
    try:
        task = stack.submit(token, "text-to-image", {"prompt": "x", "steps": 2})
        done = stack.wait_final(token, task["task_id"])
    finally:
        for node in stack.simnodes:
            node.control(reject_all=False)
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert "Rejected" in done["error"] or "rejected" in done["error"]


def test_a_node_failing_mid_run_moves_the_job_to_another_node(stack: Stack, token: str) -> None:
    first = stack.simnodes[0]
    first.control(fail_next=1)
    task = stack.submit(token, "text-to-image", {"prompt": "retry me", "steps": 3})
    done = stack.wait_final(token, task["task_id"])
    assert done["status"] == "completed", done
    assert done["attempts"] == 2
    assert done["node_id"] != first.node_id


def test_a_dropped_socket_mid_run_still_completes_once(stack: Stack, token: str) -> None:
    node = stack.simnodes[0]
    node.control(drop_socket_next=1, step_delay=0.05)
    try:
        task = stack.submit(token, "text-to-image", {"prompt": "hold on", "steps": 10})
        done = stack.wait_final(token, task["task_id"])
    finally:
        node.control(step_delay=0.01)
    assert done["status"] == "completed", done
    assert done["attempts"] == 1
    executions = node.state().get("executions", {})
    assert all(count == 1 for count in executions.values()), executions


def test_cancelling_a_job_interrupts_its_prompt_on_the_node(stack: Stack, token: str) -> None:
    node = stack.simnodes[0]
    node.control(hang_next=1)
    task = stack.submit(token, "text-to-image", {"prompt": "never ends", "steps": 50})
    wait_until(lambda: stack.task(token, task["task_id"])["status"] == "running", timeout=30, what="running")
    with stack.http(token) as http:
        assert http.delete(f"/api/v2/tasks/{task['task_id']}").status_code in (200, 202)
    done = stack.wait_final(token, task["task_id"])
    assert done["status"] == "cancelled"
    wait_until(lambda: not node.state().get("running"), timeout=15, what="the node to stop the prompt")
    assert node.state().get("interrupted", 0) >= 1
