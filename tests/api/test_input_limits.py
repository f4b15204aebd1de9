"""Hostile input gets a 4xx naming the field and stores nothing: integers past every column's range, lone
surrogates and NUL, lists where a name belongs, oversized prompts and images, path-like output names. An
unexpected error is a JSON 500 with a request id on a connection that stays open."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from database.engine import session_scope
from database.enums import DatabaseName
from database.shared.models import Job
from tests.api.conftest import Api

HUGE = 2**63  # one past the largest BigInteger; SQLite raised OverflowError on it (a 500)


@pytest.fixture(scope="module")
def client(api: Api) -> tuple[str, str]:
    """One client for the module: none of its requests may create a job (and registration is throttled)."""
    return api.new_client()


def _jobs_of(client_id: str) -> int:
    with session_scope(DatabaseName.SHARED) as session:
        return session.query(Job).filter(Job.client_id == client_id).count()


def _raw_json(http: httpx.Client, url: str, text: str) -> httpx.Response:
    """POST a JSON text as written (httpx would refuse to encode a lone surrogate itself)."""
    return http.post(url, content=text.encode("ascii"), headers={"content-type": "application/json"})


def _assert_field_error(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] in ("validation_error", "payload_too_large"), body
    assert field in body["detail"], body
    return dict(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"prompt": "\\ud800"}', "prompt"),
        ('{"prompt": "a cat\\u0000"}', "prompt"),
        ('{"prompt": "a cat", "negative_prompt": "\\udfff tail"}', "negative_prompt"),
        ('{"prompt": "a cat", "priority": ["high"]}', "priority"),
        ('{"prompt": "a cat", "workflow_name": ["sd15_basic"]}', "workflow_name"),
        ('{"prompt": "a cat", "node_group": {"name": "default"}}', "node_group"),
        ('{"prompt": "a cat", "node_group": "no-such-group"}', "node_group"),
        ('{"prompt": "a cat", "seed": 9223372036854775808}', "seed"),
        ('{"prompt": "a cat", "steps": 9223372036854775808}', "steps"),
        ('{"prompt": "a cat", "filename_prefix": "../../../../tmp/x"}', "filename_prefix"),
        ('{"prompt": "a cat", "filename_prefix": "sub/x"}', "filename_prefix"),
    ],
)
def test_bad_submit_values_are_422_and_store_nothing(
    api: Api, client: tuple[str, str], body: str, field: str
) -> None:
    client_id, token = client
    with api.http(token) as http:
        response = _raw_json(http, "/api/v2/tasks/text-to-image", body)
        _assert_field_error(response, field)
        assert field in [f["field"] for f in response.json()["fields"]]
        assert http.get("/api/v2/tasks").json()["total"] == 0
    assert _jobs_of(client_id) == 0


def test_a_prompt_over_the_limit_is_refused_before_the_scheduler(api: Api, client: tuple[str, str]) -> None:
    """A 1 MB prompt was answered 503 (Prefect refuses parameters over 512 KiB) and left a failed row."""
    client_id, token = client
    with api.http(token) as http:
        response = http.post("/api/v2/tasks/text-to-image", json={"prompt": "x" * 1_000_000})
    body = _assert_field_error(response, "prompt")
    assert "COMFYWS_API_MAX_PROMPT_CHARS" in body["detail"]
    assert _jobs_of(client_id) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/tasks",
        "/api/v2/admin/tasks",
        "/api/v2/admin/clients",
        "/api/v2/admin/audit",
    ],
)
def test_list_offsets_past_64_bits_are_422(api: Api, client: tuple[str, str], path: str) -> None:
    _, client_token = client
    token = client_token if path == "/api/v2/tasks" else api.admin_token()
    with api.http(token) as http:
        response = http.get(path, params={"offset": HUGE})
        _assert_field_error(response, "offset")
        assert http.get(path, params={"offset": 2**31}).status_code == 422


def test_admin_integers_past_their_columns_are_422(api: Api) -> None:
    admin = api.admin_token()
    with api.http(admin) as http:
        created = http.post("/api/v2/admin/clients", json={"client_name": "big-quota", "daily_quota": HUGE})
        _assert_field_error(created, "daily_quota")
        client_id = http.post("/api/v2/admin/clients", json={"client_name": "quota-ok"}).json()["client_id"]
        patched = http.patch(f"/api/v2/admin/clients/{client_id}", json={"daily_quota": HUGE})
        _assert_field_error(patched, "daily_quota")
        node = {"node_id": "n-big", "base_url": "http://127.0.0.1:9", "max_concurrent": HUGE}
        _assert_field_error(http.post("/api/v2/admin/nodes", json=node), "max_concurrent")
        for action in ("disable", "enable"):
            _assert_field_error(http.post(f"/api/v2/admin/users/{HUGE}/{action}"), "user_id")
        _assert_field_error(http.patch(f"/api/v2/admin/users/{HUGE}", json={"role": "viewer"}), "user_id")
        ok = http.post("/api/v2/admin/nodes", json={"node_id": "n-hb", "base_url": "http://127.0.0.1:9"})
        assert ok.status_code == 201, ok.text
        beat = http.post("/api/v2/nodes/n-hb/heartbeat", json={"vram_free": HUGE})
        _assert_field_error(beat, "vram_free")
        surrogate = _raw_json(http, "/api/v2/admin/clients", '{"client_name": "bad \\ud800"}')
        _assert_field_error(surrogate, "client_name")
        names = {c["client_name"] for c in http.get("/api/v2/admin/clients", params={"limit": 500}).json()["items"]}
    assert "quota-ok" in names and "big-quota" not in names


def test_registration_refuses_text_no_database_can_store(api: Api) -> None:
    with api.http() as http:
        for text in ('{"client_name": "c-\\ud800"}', '{"client_name": "c-\\u0000"}'):
            _assert_field_error(_raw_json(http, "/api/v2/auth/register", text), "client_name")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (what a decompression bomb looks like to Pillow)."""
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of header fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_an_image_over_the_pixel_limit_is_413_and_not_stored(api: Api, client: tuple[str, str]) -> None:
    """A 20000x20000 PNG raised Pillow's DecompressionBombError (a 500)."""
    _, token = client
    uploads = api.root / "uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    with api.http(token) as http:
        bomb = http.post(
            "/api/v2/upload/image", files={"file": ("bomb.png", _png_header_only(20000, 20000), "image/png")}
        )
        large = http.post(
            "/api/v2/upload/image", files={"file": ("large.png", _png_header_only(8000, 8000), "image/png")}
        )
    for response in (bomb, large):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "payload_too_large"
        assert "COMFYWS_API_MAX_IMAGE_PIXELS" in response.json()["detail"]
    assert (sorted(uploads.rglob("*")) if uploads.exists() else []) == before


def test_errors_echoing_a_lone_surrogate_still_render(api: Api, client: tuple[str, str]) -> None:
    """An unknown parameter named by a lone surrogate: the 422 about it must itself be valid JSON."""
    _, token = client
    with api.http(token) as http:
        response = _raw_json(http, "/api/v2/tasks/text-to-image", '{"prompt": "a cat", "\\ud800": 1}')
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


def test_a_body_over_the_limit_is_413_before_it_is_read(api: Api, client: tuple[str, str]) -> None:
    """4 MiB for JSON bodies (COMFYWS_API_MAX_BODY_BYTES), the file limit plus slack for uploads; a body sent
    without a length is cut off once it passes the limit."""
    client_id, token = client
    huge = b'{"prompt": "' + b"x" * (5 * 1024 * 1024) + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    with api.http(token) as http:
        declared = http.post("/api/v2/tasks/text-to-image", content=huge,
                             headers={"content-type": "application/json"})  # fmt: skip
        streamed = http.post("/api/v2/tasks/text-to-image", content=chunks(),
                             headers={"content-type": "application/json"})  # fmt: skip
        upload = http.post("/api/v2/upload/image", files={"file": ("big.png", b"\x89PNG" + b"0" * 2_000_000)})
    for response in (declared, streamed, upload):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "payload_too_large"
    assert _jobs_of(client_id) == 0
