"""The simulated node's HTTP and WebSocket surface, at the same paths and with the same bodies as ComfyUI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import platform
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from comfyws.simnode.catalog import NodeCatalog
from comfyws.simnode.config import SIM_VERSION, SimConfig
from comfyws.simnode.executor import Executor
from comfyws.simnode.hub import Hub
from comfyws.simnode.state import ControlRequest, Counters, Faults, PromptQueue, QueueItem
from comfyws.simnode.storage import FolderType, Storage
from comfyws.simnode.validation import PromptValidator, error_body

logger = logging.getLogger(__name__)

MAX_UPLOAD_SIZE = 104857600
GIB = 1024**3
MODEL_FOLDERS = ["checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                 "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
                 "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders"]
mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("video/mp4", ".mp4")


class SimNode:
    """Everything one simulated node holds in memory."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="simnode-"))
        self.storage = Storage(data_dir, output_dir=config.output_dir)
        self.catalog = NodeCatalog(config.object_info_path, checkpoints=config.checkpoints,
                                   list_inputs=self.storage.list_inputs)
        self.validator = PromptValidator(self.catalog, input_exists=self.storage.input_exists)
        self.hub = Hub()
        self.queue = PromptQueue()
        self.faults = Faults(step_delay=config.step_delay, fail_rate=config.fail_rate, node_delay=config.node_delay)
        self.counters = Counters()
        self.executor = Executor(catalog=self.catalog, storage=self.storage, hub=self.hub, queue=self.queue,
                                 faults=self.faults, counters=self.counters, preview_method=config.preview_method)


def create_app(config: SimConfig) -> FastAPI:
    node = SimNode(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(node.executor.serve())
        yield
        worker.cancel()

    app = FastAPI(title=f"Simulated ComfyUI node ({config.name})", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.node = node
    _add_prompt_routes(app, node)
    _add_queue_routes(app, node)
    _add_file_routes(app, node)
    _add_info_routes(app, node)
    _add_sim_routes(app, node)
    _add_websocket(app, node)
    return app


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _add_prompt_routes(app: FastAPI, node: SimNode) -> None:
    @app.get("/prompt")
    async def queue_info() -> JSONResponse:
        """Number of prompts running or waiting."""
        return _json({"exec_info": {"queue_remaining": node.queue.remaining()}})

    @app.post("/prompt")
    async def submit(request: Request) -> JSONResponse:
        """Validate and queue a graph, exactly like ComfyUI's POST /prompt."""
        node.counters.prompts_received += 1
        body = await _body(request)
        number = float(body["number"]) if "number" in body else node.queue.next_number(front=bool(body.get("front")))
        rejection = _rejection(node, body)
        if rejection is not None:
            node.counters.prompts_rejected += 1
            return _json(rejection, 400)
        validation = node.validator.validate(body["prompt"])
        if not validation.ok:
            node.counters.prompts_rejected += 1
            logger.warning("simnode: invalid prompt: %s", validation.error)
            return _json({"error": validation.error, "node_errors": validation.node_errors}, 400)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        node.queue.put(QueueItem(number, prompt_id, body["prompt"], extra_data, validation.outputs))
        node.counters.prompts_accepted += 1
        await node.executor.send_status()
        return _json({"prompt_id": prompt_id, "number": number, "node_errors": validation.node_errors})


def _rejection(node: SimNode, body: dict[str, Any]) -> dict[str, Any] | None:
    if "prompt" not in body:
        return {"error": error_body("no_prompt", "No prompt provided", "No prompt provided"), "node_errors": {}}
    if node.faults.reject_all:
        error = error_body("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                           "Simulated rejection (reject_all)")
        return {"error": error, "node_errors": {}}
    if not isinstance(body["prompt"], dict):
        return {"error": error_body("invalid_prompt", "Prompt must be an object of nodes"), "node_errors": {}}
    return None


def _add_queue_routes(app: FastAPI, node: SimNode) -> None:
    @app.get("/queue")
    async def queue() -> JSONResponse:
        """Running and pending items as [number, prompt_id, graph, extra_data, outputs]."""
        running = [node.queue.running.as_list()] if node.queue.running else []
        return _json({"queue_running": running, "queue_pending": [i.as_list() for i in node.queue.pending()]})

    @app.post("/queue")
    async def edit_queue(request: Request) -> Response:
        """Delete pending items or clear the queue; the running item is untouched."""
        body = await _body(request)
        if body.get("clear"):
            node.queue.clear()
        if isinstance(body.get("delete"), list):
            node.queue.delete([str(i) for i in body["delete"]])
        await node.executor.send_status()
        return Response(status_code=200)

    @app.post("/interrupt")
    async def interrupt(request: Request) -> Response:
        """Stop the running prompt (only if it is the given prompt_id) at its next step or node."""
        body = await _body(request)
        node.executor.interrupt(str(body["prompt_id"]) if body.get("prompt_id") else None)
        return Response(status_code=200)

    @app.get("/history")
    async def history(max_items: int | None = None, offset: int = -1) -> JSONResponse:
        """Finished runs, oldest first."""
        return _json(node.queue.history_page(max_items=max_items, offset=offset))

    @app.get("/history/{prompt_id}")
    async def history_item(prompt_id: str) -> JSONResponse:
        """One finished run, or {} while unknown or still running."""
        entry = node.queue.history.get(prompt_id)
        return _json({prompt_id: entry} if entry else {})

    @app.post("/history")
    async def edit_history(request: Request) -> Response:
        """Delete some history entries or clear it."""
        body = await _body(request)
        if body.get("clear"):
            node.queue.history.clear()
        for prompt_id in body.get("delete") or []:
            node.queue.history.pop(str(prompt_id), None)
        return Response(status_code=200)


def _add_file_routes(app: FastAPI, node: SimNode) -> None:
    @app.get("/view")
    async def view(filename: str = "", subfolder: str = "", type: str = "output") -> Response:
        """A file from output/, input/ or temp/; 404 with an empty body when missing."""
        path = node.storage.resolve(filename, subfolder, type) if filename else None
        if path is None:
            return Response(status_code=404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{path.name}"'}
        return FileResponse(path, media_type=media_type, headers=headers)

    @app.post("/upload/image")
    async def upload(request: Request) -> Response:
        """Store an input image; a clash without overwrite is renamed `name (1).ext`."""
        form = await request.form()
        image = form.get("image")
        if not isinstance(image, UploadFile) or not image.filename:
            return Response(status_code=400)
        subfolder = str(form.get("subfolder") or "")
        try:
            folder = FolderType(str(form.get("type") or "input"))
            name = node.storage.store_upload(await image.read(), image.filename, subfolder=subfolder, folder=folder,
                                             overwrite=str(form.get("overwrite")).lower() in ("true", "1"))
        except ValueError:
            return Response(status_code=400)
        return _json({"name": name, "subfolder": subfolder, "type": folder.value})


def _add_info_routes(app: FastAPI, node: SimNode) -> None:
    @app.get("/system_stats")
    async def system_stats() -> JSONResponse:
        """Versions and the (fake) device; says clearly that this node is simulated."""
        return _json(_system_stats(node))

    @app.get("/object_info")
    async def object_info() -> JSONResponse:
        """Schemas of every node class."""
        return _json(node.catalog.all())

    @app.get("/object_info/{class_type}")
    async def object_info_one(class_type: str) -> JSONResponse:
        """One class's schema, {} when unknown."""
        return _json({class_type: node.catalog.info(class_type)} if node.catalog.has(class_type) else {})

    @app.get("/models")
    async def models() -> JSONResponse:
        """Model folder names."""
        return _json(MODEL_FOLDERS)

    @app.get("/models/{folder}")
    async def models_in(folder: str) -> JSONResponse:
        """Files in one model folder; only checkpoints has any."""
        return _json(node.catalog.checkpoints if folder == "checkpoints" else [])

    @app.get("/features")
    async def features() -> JSONResponse:
        """Server feature flags."""
        return _json({"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE})

    @app.get("/embeddings")
    async def embeddings() -> JSONResponse:
        """No embeddings on a simulated node."""
        return _json([])

    @app.get("/extensions")
    async def extensions() -> JSONResponse:
        """No front-end extensions on a simulated node."""
        return _json([])

    @app.post("/free")
    async def free(request: Request) -> Response:
        """`free_memory` drops the cached node outputs (the next identical prompt runs again); no models to unload."""
        if (await _body(request)).get("free_memory"):
            node.executor.free_memory()
        return Response(status_code=200)

    @app.get("/view_metadata/{folder}")
    async def view_metadata(folder: str, filename: str = "") -> Response:
        """A model file's safetensors metadata; 404 with an empty body for an unknown file, as on a real node."""
        if folder != "checkpoints" or filename not in node.catalog.checkpoints:
            return Response(status_code=404)
        return _json({"note": f"simulated checkpoint {filename}: no weights"})


def _system_stats(node: SimNode) -> dict[str, Any]:
    total = int(node.config.vram_gb * GIB)
    # A busy node reports less free VRAM, which load balancers may look at.
    free = int(total * (0.35 if node.queue.running else 0.95))
    system = {
        "os": "posix", "ram_total": 32 * GIB, "ram_free": 24 * GIB, "comfyui_version": SIM_VERSION,
        "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95", "python_version": sys.version,
        "pytorch_version": "none (simulated)", "embedded_python": False, "argv": sys.argv,
        "simulated": True, "node_name": node.config.name, "platform": platform.platform(),
    }
    device = {"name": f"cuda:0 {node.config.name} (SIMULATED)", "type": "cuda", "index": 0, "vram_total": total,
              "vram_free": free, "torch_vram_total": total, "torch_vram_free": free}
    return {"system": system, "devices": [device]}


def _add_sim_routes(app: FastAPI, node: SimNode) -> None:
    @app.post("/sim/control")
    async def control(request: ControlRequest) -> JSONResponse:
        """Change fault switches (any subset); answers the new switches."""
        node.faults.apply(request)
        logger.warning("simnode: faults now %s", node.faults.snapshot())
        return _json(node.faults.snapshot())

    @app.get("/sim/state")
    async def state() -> JSONResponse:
        """Counters for tests: prompts received/executed and executions per prompt_id."""
        counters = node.counters
        return _json({
            "name": node.config.name, "prompts_received": counters.prompts_received,
            "prompts_accepted": counters.prompts_accepted, "prompts_rejected": counters.prompts_rejected,
            "executed": counters.executed, "succeeded": counters.succeeded, "failed": counters.failed,
            "interrupted": counters.interrupted, "steps": counters.steps,
            "executions": dict(counters.executions),
            "running": node.queue.running.prompt_id if node.queue.running else None,
            "pending": [item.prompt_id for item in node.queue.pending()],
            "sockets": node.hub.count(), "faults": node.faults.snapshot(),
            "output_dir": str(node.storage.dirs[FolderType.OUTPUT]),
            "input_dir": str(node.storage.dirs[FolderType.INPUT]),
        })


def _add_websocket(app: FastAPI, node: SimNode) -> None:
    @app.websocket("/ws")
    async def websocket(socket: WebSocket, clientId: str | None = None) -> None:
        await socket.accept()
        client = node.hub.add(clientId or uuid.uuid4().hex, socket)
        status = {"status": {"exec_info": {"queue_remaining": node.queue.remaining()}}, "sid": client.sid}
        try:
            await node.hub.send_text(client, json.dumps({"type": "status", "data": status}))
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await _on_client_message(node, client, message.get("text"))
        finally:
            node.hub.remove(client)


async def _on_client_message(node: SimNode, client: Any, text: str | None) -> None:
    try:
        message = json.loads(text or "")
    except json.JSONDecodeError:
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        flags = message.get("data") or {}
        client.features = flags
        client.preview_metadata = bool(flags.get("supports_preview_metadata"))
        reply = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
        await node.hub.send_text(client, json.dumps({"type": "feature_flags", "data": reply}))
