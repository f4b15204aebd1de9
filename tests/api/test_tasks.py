"""Submitting and reading jobs: validation names the field, Prefect down is a 503 with the job failed,
owners alone see their jobs and results, pages add up."""

from __future__ import annotations

import io

from PIL import Image

from database.engine import session_scope
from database.enums import DatabaseName
from database.shared.models import Job
from tests.api.conftest import Api
from tests.api.factories import job_for, result_for


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _count(api: Api, token: str) -> int:
    with api.http(token) as http:
        return int(http.get("/api/v2/tasks").json()["total"])


def test_invalid_requests_are_422_naming_the_field_and_write_nothing(api: Api) -> None:
    _, token = api.new_client()
    cases = {
        "width": {"prompt": "a cat", "width": 100000},
        "workflow_name": {"prompt": "a cat", "workflow_name": "no_such_workflow"},
        "colour": {"prompt": "a cat", "colour": "red"},
        "prompt": {"width": 512},
        "priority": {"prompt": "a cat", "priority": "urgent"},
        "steps": {"prompt": "a cat", "steps": "many"},
    }
    with api.http(token) as http:
        for field, body in cases.items():
            response = http.post("/api/v2/tasks/text-to-image", json=body)
            assert response.status_code == 422, (field, response.text)
            data = response.json()
            assert data["error"] == "validation_error"
            assert field in [f["field"] for f in data["fields"]], data
            assert field in data["detail"]
        unknown_type = http.post("/api/v2/tasks/text-to-banana", json={"prompt": "x"})
    assert unknown_type.status_code == 404
    assert _count(api, token) == 0


def test_scheduler_down_is_503_and_the_job_is_recorded_failed(api: Api) -> None:
    _, token = api.new_client()
    with api.http(token) as http:
        response = http.post("/api/v2/tasks/text-to-image",
                             json={"prompt": "a lighthouse", "width": 512, "steps": 7})
        assert response.status_code == 503
        assert response.json()["error"] == "scheduler_unavailable"
        page = http.get("/api/v2/tasks").json()
    assert page["total"] == 1
    job = page["items"][0]
    assert job["status"] == "failed"
    assert "scheduler" in job["error"]
    assert job["params"] == {"prompt": "a lighthouse", "width": 512, "steps": 7}
    with session_scope(DatabaseName.SHARED) as session:  # its size, for placement: the sampler's steps
        row = session.get(Job, job["task_id"])
        assert row is not None and row.work == 7


def test_image_parameter_must_be_the_clients_own_upload(api: Api) -> None:
    _, owner = api.new_client()
    _, other = api.new_client()
    with api.http(owner) as http:
        upload_id = http.post("/api/v2/upload/image", files={"file": ("in.png", _png(), "image/png")}).json()[
            "upload_id"
        ]
    with api.http(other) as http:
        stolen = http.post("/api/v2/tasks/image-to-video", json={"image": upload_id})
        missing = http.post("/api/v2/tasks/image-to-video", json={})
    assert stolen.status_code == 422 and stolen.json()["fields"][0]["field"] == "image"
    assert missing.status_code == 422 and missing.json()["fields"][0]["field"] == "image"
    with api.http(owner) as http:
        # Valid for the owner: it gets as far as the (down) scheduler.
        assert http.post("/api/v2/tasks/image-to-video", json={"image": upload_id}).status_code == 503


def test_other_clients_jobs_and_results_are_404(api: Api) -> None:
    owner_id, owner = api.new_client()
    _, stranger = api.new_client()
    job_id = job_for(owner_id)
    data = _png((4, 4))
    result_for(job_id, data)
    with api.http(owner) as http:
        task = http.get(f"/api/v2/tasks/{job_id}").json()
        assert task["status"] == "completed"
        assert task["results"][0]["url"] == f"/api/v2/tasks/{job_id}/results/0"
        file = http.get(task["results"][0]["url"])
        assert file.status_code == 200 and file.content == data
        assert file.headers["content-type"] == "image/png"
        assert http.get(f"/api/v2/tasks/{job_id}/results/1").status_code == 404
    with api.http(stranger) as http:
        for response in (
            http.get(f"/api/v2/tasks/{job_id}"),
            http.get(f"/api/v2/tasks/{job_id}/results/0"),
            http.delete(f"/api/v2/tasks/{job_id}"),
        ):
            assert response.status_code == 404
            assert response.json()["error"] == "not_found"
        assert http.get("/api/v2/tasks").json()["total"] == 0


def test_cancel_a_job_that_has_not_started(api: Api) -> None:
    owner_id, owner = api.new_client()
    job_id = job_for(owner_id)
    with api.http(owner) as http:
        response = http.delete(f"/api/v2/tasks/{job_id}")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert http.delete(f"/api/v2/tasks/{job_id}").json()["status"] == "cancelled"  # idempotent


def test_pagination_and_filters(api: Api) -> None:
    owner_id, owner = api.new_client()
    ids = [job_for(owner_id) for _ in range(5)] + [job_for(owner_id, task_type="image_to_video")]
    with api.http(owner) as http:
        first = http.get("/api/v2/tasks", params={"limit": 4, "offset": 0}).json()
        second = http.get("/api/v2/tasks", params={"limit": 4, "offset": 4}).json()
        videos = http.get("/api/v2/tasks", params={"task_type": "image_to_video"}).json()
        pending = http.get("/api/v2/tasks", params={"status": "pending", "limit": 1}).json()
        bad = http.get("/api/v2/tasks", params={"status": "sleeping"})
    assert first["total"] == second["total"] == 6
    assert len(first["items"]) == 4 and len(second["items"]) == 2
    assert {t["task_id"] for t in first["items"] + second["items"]} == set(ids)
    assert first["items"][0]["task_id"] == ids[-1]  # newest first
    assert videos["total"] == 1 and videos["items"][0]["task_type"] == "image_to_video"
    assert pending["total"] == 6 and pending["items"][0]["queue_position"] is not None
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "status"


def test_workflow_catalog_lists_parameters(api: Api) -> None:
    with api.http() as http:
        catalog = http.get("/api/v2/workflows").json()
    text = catalog["task_types"]["text_to_image"]
    params = {p["name"]: p for p in text["workflows"][text["default_workflow"]]["parameters"]}
    assert params["width"]["minimum"] == 64 and params["width"]["maximum"] == 2048
    assert params["prompt"]["required"] is True
