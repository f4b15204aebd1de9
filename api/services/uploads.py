"""Image uploads: checked with Pillow (a real image, an allowed format, within the size limit) before storing."""

from __future__ import annotations

import hashlib
import io
import uuid
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from api.errors import PayloadTooLarge, UnsupportedMedia
from api.schemas import UploadInfo
from api.services.request_checks import text_problem
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
        filename=_stored_name(filename),
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


def _stored_name(filename: str) -> str:
    """The client's file name without folders; one no database could store (NUL, lone surrogate) is `upload`."""
    name = Path(filename or "upload").name[:255]
    return name if name and text_problem(name) is None else "upload"


def _inspect(data: bytes) -> tuple[str, int, int]:
    settings = get_api_settings()
    allowed = [f.upper() for f in settings.allowed_image_types]
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past its own pixel limit; ours (checked from the header) is the rule.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = (image.format or "").upper()
                if image_format not in allowed:
                    raise UnsupportedMedia(
                        f"file: {image_format or 'unknown'} images are not accepted; use {allowed}"
                    )
                _check_pixels(image.width, image.height, settings.max_image_pixels)
                image.verify()  # reads the whole file: truncated or corrupt data fails here
                return image_format, image.width, image.height
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(
            f"file: more pixels than the {settings.max_image_pixels} allowed (COMFYWS_API_MAX_IMAGE_PIXELS)"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMedia(f"file: not a readable image ({exc})") from exc


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise PayloadTooLarge(
            f"file: {width}x{height} is {width * height} pixels; at most {limit} are accepted "
            "(COMFYWS_API_MAX_IMAGE_PIXELS)"
        )
