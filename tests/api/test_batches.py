"""Batches against the real stack: mixed valid and invalid items, CSV and JSONL uploads with bad rows, a sweep,
bad files, cancel mid-batch with a bounded look-ahead, and the zip with its manifest."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import reset_caches
from tests.fixtures.prefect_server import wait_until
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.prefect

FINAL_BATCH = ("completed", "completed_with_errors", "failed", "cancelled")
SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module", autouse=True)
def _package_environment(api_env_vars: dict[str, str]) -> Iterator[None]:
    """The stack may be started here, inside tests/api: give the package's environment back to the next modules."""
    yield
    os.environ.update(api_env_vars)
    reset_caches()


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return stack.new_client_token()


def submit(stack: Stack, token: str, body: dict[str, Any]) -> dict[str, Any]:
    with stack.http(token) as http:
        response = http.post("/api/v2/batches", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def upload(stack: Stack, token: str, name: str, data: bytes, **form: str) -> Any:
    with stack.http(token) as http:
        return http.post("/api/v2/batches/upload", files={"file": (name, data, "text/plain")},
                         data={"task_type": "text-to-image", **form})


def batch(stack: Stack, token: str, batch_id: str) -> dict[str, Any]:
    with stack.http(token) as http:
        response = http.get(f"/api/v2/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_batch(stack: Stack, token: str, batch_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (b := batch(stack, token, batch_id))["status"] in FINAL_BATCH and b,
        timeout=timeout, interval=0.2, what=f"batch {batch_id} to end",
    )


def test_mixed_batch_runs_the_valid_items_and_reports_the_invalid_ones_by_index(stack: Stack, token: str) -> None:
    body = {"task_type": "text-to-image", "name": "mixed", "defaults": SMALL, "items": [
        {"prompt": "a", "seed": 1}, {"prompt": "b", "colour": "red"}, {"prompt": "c", "seed": 3},
        {"prompt": "d", "width": 10**9}, {"prompt": "e", "priority": "urgent"},
    ]}
    answer = submit(stack, token, body)
    assert answer["total"] == 5 and answer["status"] == "running"
    by_index = {item["index"]: item for item in answer["items"]}
    assert by_index[0]["task_id"] and by_index[2]["task_id"]
    assert "colour" in by_index[1]["error"] and "width" in by_index[3]["error"]
    assert "priority" in by_index[4]["error"]
    done = wait_batch(stack, token, answer["batch_id"])
    assert done["status"] == "completed_with_errors", done
    assert done["counts"]["completed"] == 2 and done["counts"]["invalid"] == 3 and done["progress"] == 1.0
    # Items are ordinary jobs of the owner, low priority by default; another client sees neither.
    task = stack.task(token, by_index[0]["task_id"])
    assert task["status"] == "completed" and task["priority"] == "low" and task["params"]["seed"] == 1
    other = stack.new_client_token()
    with stack.http(other) as http:
        assert http.get(f"/api/v2/batches/{answer['batch_id']}").status_code == 404
        assert http.get(f"/api/v2/tasks/{by_index[0]['task_id']}").status_code == 404
        assert http.delete(f"/api/v2/batches/{answer['batch_id']}").status_code == 404
        assert http.get(f"/api/v2/batches/{answer['batch_id']}/results.zip").status_code == 404
        assert answer["batch_id"] not in [b["batch_id"] for b in http.get("/api/v2/batches").json()["items"]]
    with stack.http(token) as http:
        listed = http.get("/api/v2/batches").json()["items"]
    assert answer["batch_id"] in [b["batch_id"] for b in listed]


def test_sweep_expands_a_grid_and_the_zip_holds_every_file_and_a_manifest(stack: Stack, token: str) -> None:
    answer = submit(stack, token, {"task_type": "text_to_image", "defaults": {**SMALL, "prompt": "sweep"},
                                   "sweep": {"seed": [11, 12], "cfg": [5, 7]}})
    assert answer["total"] == 4 and all(item["task_id"] for item in answer["items"])
    done = wait_batch(stack, token, answer["batch_id"])
    assert done["status"] == "completed", done
    with stack.http(token) as http:
        response = http.get(f"/api/v2/batches/{answer['batch_id']}/results.zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    grid = [(item["params"]["seed"], item["params"]["cfg"]) for item in manifest["items"]]
    assert grid == [(11, 5), (11, 7), (12, 5), (12, 7)]
    assert [item["seed"] for item in manifest["items"]] == [11, 11, 12, 12]
    for item in manifest["items"]:
        assert item["status"] == "completed" and item["files"]
        assert archive.read(item["files"][0]).startswith(b"\x89PNG")
    assert sorted(archive.namelist()) == sorted(["manifest.json", *[f for i in manifest["items"] for f in i["files"]]])


def test_csv_upload_reports_bad_rows_by_row_number_and_runs_the_rest(stack: Stack, token: str) -> None:
    data = b"prompt,seed,steps\nfirst,1,2\nsecond,x,2\nthird,3\nfourth,4,2\n"
    response = upload(stack, token, "prompts.csv", data, defaults=json.dumps({"width": 64, "height": 64}))
    assert response.status_code == 202, response.text
    answer = response.json()
    by_index = {item["index"]: item for item in answer["items"]}
    assert by_index[0]["task_id"] and by_index[3]["task_id"]
    assert by_index[1]["row"] == 3 and "row 3" in by_index[1]["error"] and "seed" in by_index[1]["error"]
    assert by_index[2]["row"] == 4 and "2 cells" in by_index[2]["error"]
    done = wait_batch(stack, token, answer["batch_id"])
    assert done["counts"]["completed"] == 2 and done["counts"]["invalid"] == 2


def test_jsonl_upload_reports_bad_lines(stack: Stack, token: str) -> None:
    lines = [json.dumps({"prompt": "one", **SMALL}), "{not json", json.dumps(["a list"]),
             json.dumps({"prompt": "four", "steps": -5, "width": 64, "height": 64})]
    response = upload(stack, token, "items.jsonl", "\n".join(lines).encode())
    assert response.status_code == 202, response.text
    items = {item["index"]: item for item in response.json()["items"]}
    assert items[0]["task_id"]
    assert items[1]["row"] == 2 and "not JSON" in items[1]["error"]
    assert items[2]["row"] == 3 and "object" in items[2]["error"]
    assert "steps" in items[3]["error"]
    wait_batch(stack, token, response.json()["batch_id"])


@pytest.mark.parametrize(("name", "data", "status", "needle"), [
    ("bad.csv", b"prompt,colour\na,red\n", 422, "colour"),
    ("bad.csv", b"seed,steps\n1,2\n", 422, "prompt"),
    ("bad.csv", b"prompt\n\xff\xfe\xfa\n", 422, "UTF-8"),
    ("bad.csv", b"prompt\n", 422, "at least one item"),
    ("bad.csv", b"", 422, "empty"),
    ("big.csv", b"prompt\n" + b"x" * (20 * 1024 * 1024 + 1), 413, "limit"),  # COMFYWS_API_MAX_UPLOAD_BYTES
])
def test_bad_files_are_refused_whole_with_a_clear_error(
    stack: Stack, token: str, name: str, data: bytes, status: int, needle: str
) -> None:
    with stack.http(token) as http:
        before = http.get("/api/v2/batches").json()["total"]
    response = upload(stack, token, name, data)
    assert response.status_code == status, response.text
    assert needle in response.text and response.json()["error"]
    with stack.http(token) as http:
        assert http.get("/api/v2/batches").json()["total"] == before  # nothing stored


def test_empty_and_oversized_batches_are_422(stack: Stack, token: str) -> None:
    with stack.http(token) as http:
        empty = http.post("/api/v2/batches", json={"task_type": "text-to-image", "items": []})
        grid = http.post("/api/v2/batches", json={"task_type": "text-to-image", "defaults": {"prompt": "p"},
                                                  "sweep": {"seed": list(range(200)), "cfg": list(range(60))}})
        unknown = http.post("/api/v2/batches", json={"task_type": "text-to-sound", "items": [{"prompt": "p"}]})
    assert empty.status_code == 422 and "at least one item" in empty.text
    assert grid.status_code == 422 and "12000 items" in grid.text and "10000" in grid.text
    assert unknown.status_code == 404


def test_cancel_mid_batch_ends_every_item_once_and_keeps_the_lookahead(stack: Stack, token: str) -> None:
    answer = submit(stack, token, {"task_type": "text-to-image", "defaults": {**SMALL, "steps": 30},
                                   "items": [{"prompt": f"item {i}", "seed": i} for i in range(24)]})
    batch_id = answer["batch_id"]
    in_flight = []

    def some_done() -> bool:
        counts = batch(stack, token, batch_id)["counts"]
        in_flight.append(sum(counts.get(s, 0) for s in ("queued", "running", "cancelling")))
        return counts.get("completed", 0) >= 2

    wait_until(some_done, timeout=90, interval=0.1, what="two items to complete")
    # sim-1 holds 2 prompts: at most its slots plus the look-ahead of 2 have runs at any time.
    assert max(in_flight) <= 4, in_flight
    assert batch(stack, token, batch_id)["counts"].get("pending", 0) > 0
    with stack.http(token) as http:
        cancelled = http.delete(f"/api/v2/batches/{batch_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    def all_ended() -> dict[str, Any] | None:
        current = batch(stack, token, batch_id)
        ended = all(i["status"] in ("completed", "failed", "cancelled") for i in current["items"])
        return current if ended else None

    final = wait_until(all_ended, timeout=60, interval=0.2, what="every item to end")
    assert final["status"] == "cancelled"
    statuses = [item["status"] for item in final["items"]]
    assert statuses.count("completed") >= 2 and statuses.count("cancelled") >= 10, statuses
    for item in final["items"]:
        task = stack.task(token, item["task_id"])
        assert len(task["results"]) == (1 if task["status"] == "completed" else 0), task
        assert task["attempts"] <= 1, task
