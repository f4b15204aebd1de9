"""The one client that talks to a ComfyUI node: HTTP calls plus the WebSocket run follower."""

from __future__ import annotations

import contextlib
import mimetypes
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from comfyws.http import async_client
from workers.comfyui.errors import ComfyUIError, NodeUnavailable, OutputMissing, PromptRejected
from workers.comfyui.models import (
    Features,
    FileRef,
    HistoryEntry,
    NodeSchema,
    QueueState,
    RunResult,
    SubmitResult,
    SystemStats,
    ValidationFailure,
)
from workers.comfyui.tracker import EventHandler, RunTracker, TrackerOptions

Graph = Mapping[str, Any]


class ComfyUIClient:
    """Client of one ComfyUI node; every answer is a typed model, every failure a `ComfyUIError`."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        client_id: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        self._owns_http = http is None
        self._http = http or async_client(timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def ws_url(self) -> str:
        """The node's WebSocket URL, without the clientId query."""
        scheme, _, rest = self.base_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"

    # -- prompts -----------------------------------------------------------------------------------------

    async def submit(
        self,
        graph: Graph,
        *,
        prompt_id: str,
        front: bool = False,
        client_id: str | None = None,
        new: bool = False,
    ) -> SubmitResult:
        """Queue a graph under a caller-chosen prompt_id; a prompt_id the node already knows is not sent again.

        `new=True`: the caller made this prompt_id just now, so the node cannot know it; the lookup is skipped.
        """
        known = None if new else await self._known(prompt_id)
        if known is not None:
            return known
        body: dict[str, Any] = {
            "prompt": dict(graph),
            "client_id": client_id or self.client_id,
            "prompt_id": prompt_id,
        }
        if front:
            body["front"] = True
        response = await self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            raise PromptRejected.from_failure(
                ValidationFailure.model_validate(_json(response)), prompt_id=prompt_id
            )
        result = SubmitResult.model_validate(self._checked_json(response))
        if result.node_errors:
            await self._drop_partial(prompt_id)
            raise PromptRejected(
                error_type="prompt_outputs_failed_validation",
                message="Some outputs failed validation",
                node_errors=result.node_errors,
                prompt_id=prompt_id,
            )
        return result

    async def _known(self, prompt_id: str) -> SubmitResult | None:
        entry = await self.history(prompt_id)
        if entry is not None:
            return SubmitResult(prompt_id=prompt_id, number=entry.number, already_known=True)
        item = (await self.queue()).find(prompt_id)
        if item is not None:
            return SubmitResult(prompt_id=prompt_id, number=item.number, already_known=True)
        return None

    async def _drop_partial(self, prompt_id: str) -> None:
        # A 200 with node_errors still runs the valid branches; we reject the whole prompt, so stop that work.
        with contextlib.suppress(NodeUnavailable):
            await self.stop(prompt_id)

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished run of a prompt, or None while it is unknown, queued or running."""
        raw = await self._get_json(f"/history/{prompt_id}")
        entry = raw.get(prompt_id) if isinstance(raw, dict) else None
        return HistoryEntry.from_api(prompt_id, entry) if isinstance(entry, dict) else None

    async def queue(self) -> QueueState:
        """Running and pending prompts."""
        return QueueState.from_api(await self._get_json("/queue"))

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt; with a prompt_id, only if that prompt is the one running."""
        await self._post("/interrupt", {"prompt_id": prompt_id} if prompt_id else None)

    async def stop(self, prompt_id: str) -> None:
        """Take one prompt off the node: drop it from the queue, and interrupt it if it is the one running."""
        await self.delete_from_queue([prompt_id])
        await self.interrupt(prompt_id)

    async def delete_from_queue(self, prompt_ids: Sequence[str]) -> None:
        """Drop pending prompts (the running one is not affected)."""
        await self._post("/queue", {"delete": list(prompt_ids)})

    async def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """Ask the node to unload models and release memory."""
        await self._post("/free", {"unload_models": unload_models, "free_memory": free_memory})

    # -- node information --------------------------------------------------------------------------------

    async def system_stats(self) -> SystemStats:
        """Versions, RAM and devices; cheap, a good liveness probe."""
        return SystemStats.model_validate(await self._get_json("/system_stats"))

    async def object_info(self, class_type: str | None = None) -> dict[str, NodeSchema]:
        """Node class schemas (all, or one; an unknown class gives an empty dict)."""
        raw = await self._get_json(f"/object_info/{class_type}" if class_type else "/object_info")
        return {name: NodeSchema.model_validate(schema) for name, schema in raw.items()}

    async def checkpoints(self) -> list[str]:
        """Checkpoint file names on the node."""
        return [str(name) for name in await self._get_json("/models/checkpoints")]

    async def features(self) -> Features:
        """Server feature flags."""
        return Features.model_validate(await self._get_json("/features"))

    # -- files -------------------------------------------------------------------------------------------

    async def view(self, ref: FileRef) -> bytes:
        """The bytes of a file on the node."""
        response = await self._request("GET", "/view", params=_view_params(ref))
        self._check_view(response, ref)
        return response.content

    async def download(self, ref: FileRef, dest_dir: Path) -> Path:
        """Stream a node file into `dest_dir` (under its own base name) and return the path."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / Path(ref.filename).name
        partial = target.with_name(f".{target.name}.part")
        url = f"{self.base_url}/view"
        try:
            async with self._http.stream(
                "GET", url, params=_view_params(ref), timeout=self.timeout
            ) as response:
                self._check_view(response, ref)
                with partial.open("wb") as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise NodeUnavailable(
                f"download of {ref.filename} failed: {exc!r}", base_url=self.base_url
            ) from exc
        # Rename last so that a reader never sees a half-written file.
        partial.replace(target)
        return target

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = True
    ) -> FileRef:
        """Put an input image on the node; the answer names the file as stored (it may be renamed)."""
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        form = {"subfolder": subfolder, "type": "input", "overwrite": "true" if overwrite else "false"}
        response = await self._request(
            "POST", "/upload/image", files={"image": (filename, data, mime)}, data=form
        )
        raw = self._checked_json(response)
        return FileRef(
            filename=raw["name"], subfolder=raw.get("subfolder", ""), type=raw.get("type", "input")
        )

    # -- runs --------------------------------------------------------------------------------------------

    async def run(
        self,
        graph: Graph,
        *,
        prompt_id: str,
        on_event: EventHandler | None = None,
        idle_timeout: float = 120.0,
        total_timeout: float | None = None,
        poll_interval: float = 10.0,
        front: bool = False,
        new: bool = False,
        on_submitted: Callable[[SubmitResult], None] | None = None,
    ) -> RunResult:
        """Connect the socket, submit, and follow the prompt to its end (`new` as in `submit`); `on_submitted` is
        called once the node holds the prompt (accepted now, or known from before)."""
        options = TrackerOptions(idle_timeout, total_timeout, poll_interval)
        # One socket per run: sockets sharing a clientId replace each other, so concurrent runs need their own.
        client_id = f"{self.client_id}-{prompt_id}"
        async with RunTracker(
            self, prompt_id, client_id=client_id, on_event=on_event, options=options
        ) as tracker:
            submitted = await self.submit(graph, prompt_id=prompt_id, front=front, client_id=client_id, new=new)
            if on_submitted is not None:
                on_submitted(submitted)
            if not submitted.already_known:
                return await tracker.wait()
        # The node had this prompt before (a retried task): follow it under the client_id it was sent with.
        return await self.follow(
            prompt_id,
            on_event=on_event,
            idle_timeout=idle_timeout,
            total_timeout=total_timeout,
            poll_interval=poll_interval,
        )

    async def follow(
        self,
        prompt_id: str,
        *,
        on_event: EventHandler | None = None,
        idle_timeout: float = 120.0,
        total_timeout: float | None = None,
        poll_interval: float = 10.0,
    ) -> RunResult:
        """Follow a prompt submitted earlier (e.g. before a worker restart) to its end."""
        item = (await self.queue()).find(prompt_id)
        # Node messages go only to the socket of the prompt's own client_id, so listen under that one.
        client_id = item.client_id if item and item.client_id else f"{self.client_id}-{prompt_id}"
        options = TrackerOptions(idle_timeout, total_timeout, poll_interval)
        async with RunTracker(
            self, prompt_id, client_id=client_id, on_event=on_event, options=options
        ) as tracker:
            return await tracker.wait(reconcile_first=True)

    # -- plumbing ----------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(
                method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs
            )
        except httpx.TransportError as exc:
            raise NodeUnavailable(f"{method} {path} failed: {exc!r}", base_url=self.base_url) from exc
        if response.status_code >= 500:
            raise NodeUnavailable(f"{method} {path} -> HTTP {response.status_code}", base_url=self.base_url)
        return response

    async def _get_json(self, path: str) -> Any:
        return self._checked_json(await self._request("GET", path))

    async def _post(self, path: str, body: dict[str, Any] | None) -> None:
        response = await self._request("POST", path, json=body) if body else await self._request("POST", path)
        self._raise_for_status(response)

    def _checked_json(self, response: httpx.Response) -> Any:
        self._raise_for_status(response)
        return _json(response)

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            request = response.request
            message = f"{request.method} {request.url.path} -> HTTP {response.status_code}"
            if response.status_code >= 500:
                raise NodeUnavailable(message, base_url=self.base_url)
            raise ComfyUIError(message)

    def _check_view(self, response: httpx.Response, ref: FileRef) -> None:
        if response.status_code == 404:
            raise OutputMissing(f"{ref.type}/{ref.subfolder}/{ref.filename} is not on {self.base_url}")
        self._raise_for_status(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        # A node that answers garbage is as good as down for us.
        raise NodeUnavailable(f"invalid JSON from {response.request.url}") from exc


def _view_params(ref: FileRef) -> dict[str, str]:
    return {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
