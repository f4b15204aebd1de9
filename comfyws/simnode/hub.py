"""Open WebSockets by clientId: targeted and broadcast JSON messages and binary preview frames."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Client:
    """One socket; `preview_metadata` is set once it sent feature_flags asking for type-4 previews."""

    sid: str
    socket: WebSocket
    preview_metadata: bool = False
    features: dict[str, Any] = field(default_factory=dict)


class Hub:
    """Routes messages the way ComfyUI's PromptServer.send_sync does: sid None means every socket."""

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}

    def add(self, sid: str, socket: WebSocket) -> Client:
        # A second socket with the same clientId replaces the first, as on a real node.
        client = Client(sid=sid, socket=socket)
        self._clients[sid] = client
        return client

    def remove(self, client: Client) -> None:
        if self._clients.get(client.sid) is client:
            del self._clients[client.sid]

    def targets(self, sid: str | None) -> list[Client]:
        if sid is None:
            return list(self._clients.values())
        client = self._clients.get(sid)
        return [client] if client else []

    async def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        text = json.dumps({"type": event, "data": data})
        for client in self.targets(sid):
            await self.send_text(client, text)

    async def send_text(self, client: Client, text: str) -> None:
        try:
            await client.socket.send_text(text)
        except Exception:  # noqa: BLE001 - a socket that died mid-send is simply forgotten, like a real node does
            self.remove(client)

    async def send_bytes(self, client: Client, payload: bytes) -> None:
        try:
            await client.socket.send_bytes(payload)
        except Exception:  # noqa: BLE001 - same as send_text
            self.remove(client)

    async def close_all(self) -> int:
        """Drop every socket (fault injection); returns how many were closed."""
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.socket.close(code=1011)
        logger.warning("simnode: dropped %d websocket(s) on purpose", len(clients))
        return len(clients)

    def count(self) -> int:
        return len(self._clients)
