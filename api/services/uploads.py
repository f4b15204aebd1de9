"""Image uploads: checked with Pillow (a real image, an allowed format, within the size limit) before storing."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from api.errors import PayloadTooLarge, UnsupportedMedia
from api.schemas import UploadInfo
from api.settings import get_api_settings
from comfyws.settings import get_settings
from database.client import repositories as client_repo

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


def check_size(size: int) -> None:
    limit = get_api_settings().max_upload_bytes
    if size > limit:
        raise PayloadTooLarge(f"file: larger than the {limit} byte limit")


def store_image(session: Session, *, client_id: str, filename: str, data: bytes) -> UploadInfo:
    """Validate the bytes as an image, write them under uploads/<client>/<sha256>.<ext>, record the upload."""
    check_size(len(data))
    image_format, width, height = _inspect(data)
    digest = hashlib.sha256(data).hexdigest()
    relative = Path(client_id) / f"{digest}.{_EXTENSIONS.get(image_format, image_format.lower())}"
    target = get_settings().uploads_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():  # same bytes, same name: storing twice is harmless and skipped
        tmp = target.with_suffix(f".{uuid.uuid4().hex}.part")
        tmp.write_bytes(data)
        tmp.replace(target)
    content_type = Image.MIME.get(image_format, "application/octet-stream")
    upload = client_repo.create_upload(
        session,
        id=str(uuid.uuid4()),
        client_id=client_id,
        filename=Path(filename or "upload").name[:255],
        path=relative.as_posix(),
        content_type=content_type,
        size=len(data),
        sha256=digest,
        width=width,
        height=height,
    )
    return UploadInfo(
        upload_id=upload.id,
        filename=upload.filename,
        width=width,
        height=height,
        size=upload.size,
        content_type=content_type,
        sha256=digest,
    )


def _inspect(data: bytes) -> tuple[str, int, int]:
    allowed = [f.upper() for f in get_api_settings().allowed_image_types]
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = (image.format or "").upper()
            if image_format not in allowed:
                raise UnsupportedMedia(
                    f"file: {image_format or 'unknown'} images are not accepted; use {allowed}"
                )
            image.verify()  # reads the whole file: truncated or corrupt data fails here
            return image_format, image.width, image.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMedia(f"file: not a readable image ({exc})") from exc
