"""File references and per-node outputs, shared by HTTP history answers and WebSocket `executed` events."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FileType(StrEnum):
    """The folder a node file lives in, as `/view?type=` names it."""

    OUTPUT = "output"
    INPUT = "input"
    TEMP = "temp"


class FileRef(BaseModel):
    """One file on a node: what `/view` needs to fetch it."""

    model_config = ConfigDict(frozen=True)

    filename: str
    subfolder: str = ""
    # Plain str, not FileType: custom nodes may report other folders and that must not break a run.
    type: str = FileType.OUTPUT


class NodeOutput(BaseModel):
    """The `output` of one node: file lists by kind plus the `animated` flags."""

    model_config = ConfigDict(extra="ignore")

    images: list[FileRef] = Field(default_factory=list)
    gifs: list[FileRef] = Field(default_factory=list)
    videos: list[FileRef] = Field(default_factory=list)
    audio: list[FileRef] = Field(default_factory=list)
    animated: list[bool] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)

    @property
    def files(self) -> list[FileRef]:
        """Every file this node produced, in a stable order."""
        return [*self.images, *self.gifs, *self.videos, *self.audio]

    @property
    def is_animated(self) -> bool:
        """True when the node wrote an animation or video (SaveAnimatedWEBP/PNG, SaveVideo)."""
        return any(self.animated)


def output_files(outputs: dict[str, NodeOutput]) -> list[FileRef]:
    """All output and temp files of a run, node by node, without duplicates."""
    seen: dict[FileRef, None] = {}
    for output in outputs.values():
        for ref in output.files:
            if ref.type in (FileType.OUTPUT, FileType.TEMP):
                seen.setdefault(ref, None)
    return list(seen)
