"""The node's input/, output/ and temp/ folders: numbered save paths, uploads, and safe lookups for /view."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import string
from enum import StrEnum
from pathlib import Path

from PIL import Image


class FolderType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    TEMP = "temp"


class Storage:
    """Resolves and writes files the way ComfyUI's folder_paths does."""

    def __init__(self, data_dir: Path, *, output_dir: Path | None = None) -> None:
        self.dirs = {
            FolderType.INPUT: data_dir / "input",
            FolderType.OUTPUT: output_dir or data_dir / "output",
            FolderType.TEMP: data_dir / "temp",
        }
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        self._ensure_example()

    def _ensure_example(self) -> None:
        # A real node ships input/example.png and lists it in LoadImage's choices.
        example = self.dirs[FolderType.INPUT] / "example.png"
        if not example.exists():
            Image.new("RGB", (512, 512), (90, 120, 160)).save(example)

    def resolve(self, filename: str, subfolder: str, folder: str) -> Path | None:
        """The file behind /view parameters, or None if missing or outside the folder."""
        try:
            base = self.dirs[FolderType(folder)].resolve()
        except ValueError:
            return None
        path = (base / subfolder / filename).resolve()
        if base not in path.parents or not path.is_file():
            return None
        return path

    def input_exists(self, name: str) -> bool:
        return self.resolve(os.path.basename(name), os.path.dirname(name), FolderType.INPUT) is not None

    def input_path(self, name: str) -> Path:
        return self.dirs[FolderType.INPUT] / name

    def list_inputs(self) -> list[str]:
        folder = self.dirs[FolderType.INPUT]
        return [p.name for p in folder.iterdir() if p.is_file()]

    def save_path(self, prefix: str, folder: FolderType, extension: str, count: int = 1) -> tuple[Path, str, list[str]]:
        """(directory, subfolder, file names) for `count` new files: `<prefix>_<counter:05>_.<ext>`."""
        subfolder, name = os.path.split(os.path.normpath(prefix))
        directory = self.dirs[folder] / subfolder
        directory.mkdir(parents=True, exist_ok=True)
        counter = _next_counter(directory, name)
        names = [f"{name}_{counter + i:05}_.{extension}" for i in range(count)]
        return directory, subfolder, names

    def temp_prefix(self) -> str:
        return "ComfyUI_temp_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))

    def store_upload(self, data: bytes, filename: str, *, subfolder: str, folder: FolderType, overwrite: bool) -> str:
        """Write an upload; without overwrite a clash becomes `name (1).ext` unless the bytes are identical."""
        directory = (self.dirs[folder] / subfolder).resolve()
        if self.dirs[folder].resolve() not in (directory, *directory.parents):
            raise ValueError("subfolder outside the folder")
        directory.mkdir(parents=True, exist_ok=True)
        stem, ext = os.path.splitext(os.path.basename(filename))
        name = f"{stem}{ext}"
        attempt = 1
        while not overwrite and (directory / name).exists():
            if _digest((directory / name).read_bytes()) == _digest(data):
                return name
            name = f"{stem} ({attempt}){ext}"
            attempt += 1
        (directory / name).write_bytes(data)
        return name


def _next_counter(directory: Path, name: str) -> int:
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)_")
    found = [int(m.group(1)) for p in directory.iterdir() if (m := pattern.match(p.name))]
    return max(found, default=0) + 1


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
