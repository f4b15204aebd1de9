"""A pass-through proxy in front of a simulated node that timestamps every `progress` message the node sends.

The node sends a prompt's progress only to the socket of the prompt's own client id, so no third socket can
listen in; the worker is pointed at this tap instead, and the tap notes when each step leaves the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import Any, Self

import httpx
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


class NodeTap:
    """`steps[(prompt_id, step)]` is the `time.time()` at which the node's progress message reached the tap."""

    def __init__(self, node_url: str, port: int) -> None:
        self.node_url = node_url.rstrip("/")
        self.url = f"http://127.0.0.1:{port}"
        self.steps: dict[tuple[str, int], float] = {}
        app = Starlette(
            routes=[
                WebSocketRoute("/ws", self._socket),
                Route("/{path:path}", self._http, methods=_METHODS),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._client: httpx.AsyncClient | None = None

    async def _serve(self) -> None:
        async with httpx.AsyncClient(base_url=self.node_url, timeout=60) as client:
            self._client = client
            await self._server.serve()

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("node tap did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _http(self, request: Request) -> Response:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream = await self._client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    async def _socket(self, socket: WebSocket) -> None:
        await socket.accept()
        query = f"?{socket.url.query}" if socket.url.query else ""
        ws_url = self.node_url.replace("http", "ws", 1) + "/ws" + query
        async with websockets.connect(ws_url, max_size=None, compression=None) as node:
            down = asyncio.create_task(self._node_to_worker(node, socket))
            try:
                await self._worker_to_node(socket, node)
            finally:
                down.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await down

    async def _node_to_worker(self, node: Any, socket: WebSocket) -> None:
        async for message in node:
            if isinstance(message, str):
                self._note(message)
                await socket.send_text(message)
            else:
                await socket.send_bytes(message)
        await socket.close()

    async def _worker_to_node(self, socket: WebSocket, node: Any) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await node.send(message["text"])
                elif message.get("bytes") is not None:
                    await node.send(message["bytes"])

    def _note(self, text: str) -> None:
        arrived = time.time()
        if '"progress"' not in text:
            return
        message = json.loads(text)
        if message.get("type") == "progress":
            data = message["data"]
            self.steps.setdefault((str(data["prompt_id"]), int(data["value"])), arrived)
