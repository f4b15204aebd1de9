"""A batch's results as one zip, streamed: every finished item's files named by index, and a manifest.json."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.services.batches import find, view
from comfyws.settings import get_settings
from database.engine import session_scope
from database.enums import DatabaseName
from database.shared import batches as batch_repo

CHUNK = 256 * 1024


@dataclass(frozen=True)
class Archive:
    """What goes into the zip: (name in the zip, file on disk) pairs and the manifest."""

    files: list[tuple[str, Path]]
    manifest: dict[str, Any]
    name: str


def collect(batch_id: str, *, client_id: str | None) -> Archive:
    """The batch's files and manifest, read in one transaction (404 for another client's batch)."""
    outputs = get_settings().outputs_dir.resolve()
    with session_scope(DatabaseName.SHARED) as session:
        batch = find(session, batch_id, client_id)
        summary = view(session, batch)
        files: list[tuple[str, Path]] = []
        items: list[dict[str, Any]] = [dict(e) for e in batch.item_errors or []]
        for job in batch_repo.items(session, batch_id):
            names = []
            for result in job.results:
                path = (outputs / result.path).resolve()
                if not path.is_relative_to(outputs) or not path.is_file():
                    continue
                name = f"{job.batch_index:05d}_{result.index}{Path(result.filename).suffix}"
                files.append((name, path))
                names.append(name)
            items.append({
                "index": job.batch_index, "task_id": job.id, "status": job.status.value, "params": job.params,
                "seed": job.seed, "error": job.error, "files": names,
            })
    manifest = {
        "batch_id": summary.batch_id, "name": summary.name, "task_type": summary.task_type,
        "workflow_name": summary.workflow_name, "status": summary.status.value, "total": summary.total,
        "counts": summary.counts, "created_at": summary.created_at.isoformat(),
        "finished_at": summary.finished_at.isoformat() if summary.finished_at else None,
        "items": sorted(items, key=lambda item: int(item["index"])),
    }
    return Archive(files, manifest, f"batch-{batch_id}.zip")


class _Sink:
    """A write-only stream that hands out what the zip writer wrote since the last call."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def stream(archive: Archive) -> Iterator[bytes]:
    """The zip, chunk by chunk, never the whole archive in memory (images are stored, not recompressed)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:  # type: ignore[call-overload]
        zf.writestr("manifest.json", json.dumps(archive.manifest, indent=2, default=str))
        yield sink.take()
        for name, path in archive.files:
            with path.open("rb") as source, zf.open(name, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
