"""Revocation that reaches open WebSockets: a per-process registry of sockets by identity.

A change that revokes an identity's tokens (disable, enable, rotation, role or password change) publishes a
`revoke` control event on the progress bus (through Redis every API process gets it); each process closes that
identity's sockets with 4401 at once. A sweep every COMFYWS_API_REVOCATION_SWEEP_S (2 s) re-checks each open socket's identity
against the database, for revocations made where no bus reaches (another API process without Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool

from api.settings import get_api_settings
from database.admin import repositories as admin_repo
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName

log = logging.getLogger(__name__)

REVOKE_EVENT = "revoke"
CLOSE_UNAUTHORIZED = 4401


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str  # "client" or "admin"
    subject: str  # client id or admin username
    version: int  # the token version the socket authenticated with


def revoke_event(kind: str, subject: str) -> dict[str, Any]:
    return {"type": REVOKE_EVENT, "identity_kind": kind, "subject": subject}


class SocketRegistry:
    def __init__(self) -> None:
        self._sockets: dict[WebSocket, Identity] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def track(self, websocket: WebSocket, identity: Identity) -> Iterator[None]:
        self._sockets[websocket] = identity
        try:
            yield
        finally:
            self._sockets.pop(websocket, None)

    def handle_event(self, event: dict[str, Any]) -> None:
        """A bus control event (runs in the event loop): close the named identity's sockets."""
        if event.get("type") != REVOKE_EVENT:
            return
        kind, subject = event.get("identity_kind"), event.get("subject")
        doomed = [ws for ws, who in self._sockets.items() if who.kind == kind and who.subject == subject]
        for websocket in doomed:
            asyncio.get_running_loop().create_task(close_revoked(websocket))

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="socket-revocation-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(get_api_settings().revocation_sweep_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("socket revocation sweep failed")

    async def sweep(self) -> None:
        """Close every socket whose identity is gone, disabled or at another token version."""
        if not self._sockets:
            return
        identities = set(self._sockets.values())
        valid = await run_in_threadpool(_still_valid, identities)
        for websocket, identity in list(self._sockets.items()):
            if identity not in valid:
                await close_revoked(websocket)


def _still_valid(identities: set[Identity]) -> set[Identity]:
    valid: set[Identity] = set()
    clients = [i for i in identities if i.kind == "client"]
    admins = [i for i in identities if i.kind == "admin"]
    if clients:
        with session_scope(DatabaseName.CLIENT) as session:
            for identity in clients:
                client = client_repo.get_client(session, identity.subject)
                if client is not None and client.is_active and client.secret_version == identity.version:
                    valid.add(identity)
    if admins:
        with session_scope(DatabaseName.ADMIN) as session:
            for identity in admins:
                user = admin_repo.get_admin_user(session, identity.subject)
                if user is not None and user.is_active and user.token_version == identity.version:
                    valid.add(identity)
    return valid


async def close_revoked(websocket: WebSocket) -> None:
    """Say why, then close with 4401 (the socket's relay ends when the peer answers the close)."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "error": "unauthorized", "detail": "token revoked"})
    with contextlib.suppress(Exception):
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")


@contextlib.asynccontextmanager
async def tracked(websocket: WebSocket, identity: Identity) -> AsyncIterator[None]:
    registry: SocketRegistry = websocket.app.state.sockets
    with registry.track(websocket, identity):
        yield
