"""Tiny async flows the worker tests deploy: they report through files in a directory the test owns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import flow

_STEP_S = 0.02


def _mark(directory: str, name: str, text: str = "") -> None:
    (Path(directory) / name).write_text(text)


def _record_cancellation(flow_: Any, flow_run: Any, state: Any) -> None:
    _mark(flow_run.parameters["directory"], f"cancel-hook-{flow_run.parameters['tag']}")


@flow(name="quick-test-flow")
async def quick(tag: str = "x") -> str:
    """Returns at once."""
    return tag


@flow(name="gated-test-flow", on_cancellation=[_record_cancellation])
async def gated(directory: str, tag: str) -> str:
    """Marks `started-<tag>` (appending one line per attempt), then waits for a `release-<tag>` file."""
    started = Path(directory) / f"started-{tag}"
    with started.open("a") as out:
        out.write("attempt\n")
    while not (Path(directory) / f"release-{tag}").exists():
        await asyncio.sleep(_STEP_S)
    return tag
