"""Uploads are checked as images before anything is stored."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image

from tests.api.conftest import Api


def _image(fmt: str, size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def _stored_files(api: Api) -> list[str]:
    uploads = api.root / "uploads"
    return sorted(str(p) for p in uploads.rglob("*") if p.is_file()) if uploads.exists() else []


def test_png_upload_is_stored_with_its_checksum(api: Api) -> None:
    _, token = api.new_client()
    data = _image("PNG")
    with api.http(token) as http:
        response = http.post("/api/v2/upload/image", files={"file": ("cat.png", data, "image/png")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"], body["size"]) == (16, 12, len(data))
    assert body["content_type"] == "image/png" and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert any(path.endswith(f"{body['sha256']}.png") for path in _stored_files(api))


def test_non_images_wrong_formats_and_oversized_files_are_refused_and_not_stored(api: Api) -> None:
    _, token = api.new_client()
    before = _stored_files(api)
    noise = Image.frombytes("RGB", (200, 200), random.Random(7).randbytes(200 * 200 * 3))
    big = io.BytesIO()
    noise.save(big, format="PNG")  # incompressible: well over the test server's 64 KiB limit
    cases = [
        (("notes.txt", b"hello, not an image", "text/plain"), 415),
        (("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png"), 415),
        (("anim.gif", _image("GIF"), "image/gif"), 415),
        (("big.png", big.getvalue(), "image/png"), 413),
    ]
    with api.http(token) as http:
        for file, status in cases:
            response = http.post("/api/v2/upload/image", files={"file": file})
            assert response.status_code == status, (file[0], response.text)
            assert "file" in response.json()["detail"]
        assert http.post("/api/v2/upload/image").status_code == 422  # no file part at all
    assert _stored_files(api) == before


def test_upload_needs_a_client_token(api: Api) -> None:
    with api.http() as http:
        response = http.post("/api/v2/upload/image", files={"file": ("a.png", _image("PNG"), "image/png")})
    assert response.status_code == 401
