"""Dependencies of the routes: database sessions and the authenticated caller, as Annotated aliases."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api import permissions
from api.dispatcher import Dispatcher
from api.errors import Forbidden, Unauthorized
from api.revocation import revoke_event
from api.security import NodeCredentials, TokenKind, decode_token
from api.settings import get_api_settings
from database.admin import models as admin_models
from database.admin import repositories as admin_repo
from database.client import models as client_models
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName
from workers.progress import ProgressBus

_bearer = HTTPBearer(
    auto_error=False, description="Access token from /api/v2/auth/token or /admin/auth/login"
)


def _client_db() -> Iterator[Session]:
    with session_scope(DatabaseName.CLIENT) as session:
        yield session


def _admin_db() -> Iterator[Session]:
    with session_scope(DatabaseName.ADMIN) as session:
        yield session


def _shared_db() -> Iterator[Session]:
    with session_scope(DatabaseName.SHARED) as session:
        yield session


# scope="function": the transaction commits before the response leaves, so a client never reads stale rows.
ClientSession = Annotated[Session, Depends(_client_db, scope="function")]
AdminSession = Annotated[Session, Depends(_admin_db, scope="function")]
SharedSession = Annotated[Session, Depends(_shared_db, scope="function")]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a Bearer access token is required")
    return credentials.credentials


def client_from_token(session: Session, token: str) -> client_models.Client:
    """The active client a token belongs to; a rotated secret or a disabled client makes old tokens 401."""
    claims = decode_token(token)
    if claims.kind is not TokenKind.CLIENT:
        raise Unauthorized("a client token is required")
    client = client_repo.get_client(session, claims.subject)
    if client is None or not client.is_active or client.secret_version != claims.version:
        raise Unauthorized("token revoked")
    return client


def admin_from_token(session: Session, token: str) -> admin_models.AdminUser:
    """The active admin a token belongs to; disable, enable, role and password changes bump the version: 401."""
    claims = decode_token(token)
    if claims.kind is not TokenKind.ADMIN:
        raise Unauthorized("an admin access token is required")
    user = admin_repo.get_admin_user(session, claims.subject)
    if user is None or not user.is_active or user.token_version != claims.version:
        raise Unauthorized("token revoked")
    return user


def require_role(user: admin_models.AdminUser, method: str, path: str) -> None:
    """The permission table decides; a route missing from it is refused to everyone."""
    needed = permissions.required_role(method, path)
    if needed is None:
        raise Forbidden(f"{method} {path} is not in the permission table")
    if not permissions.allows(user.role, needed):
        raise Forbidden(f"this needs the {needed} role; {user.username!r} is {user.role}")


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def _current_client(request: Request, credentials: Credentials) -> client_models.Client:
    # A session of its own, closed at once: the request's session would hold a pooled connection until the
    # route returns, and a submit waits on the Prefect server meanwhile (16 submits exhausted the pool).
    with session_scope(DatabaseName.CLIENT) as session:
        client = client_from_token(session, _token(credentials))
    request.state.client_id = client.id  # read by the access log
    return client


def _admin_user(request: Request, session: AdminSession, credentials: Credentials) -> admin_models.AdminUser:
    user = admin_from_token(session, _token(credentials))
    require_role(user, request.method, _route_path(request))
    return user


def _node_caller(request: Request, session: AdminSession, credentials: Credentials) -> NodeCredentials:
    """The shared node token, an operator's admin token, or another token the node service checks against the
    node's own (a viewer's admin token is refused here: 403)."""
    token = _token(credentials)
    if hmac.compare_digest(token.encode(), get_api_settings().node_secret().encode()):
        return NodeCredentials(admin=None, shared_token=True, token=token)
    try:
        claims_kind = decode_token(token).kind
    except Unauthorized:
        return NodeCredentials(admin=None, shared_token=False, token=token)  # maybe the node's own token
    if claims_kind is not TokenKind.ADMIN:
        raise Unauthorized("the node token, the node's own token or an operator's token is required")
    user = admin_from_token(session, token)
    require_role(user, request.method, _route_path(request))
    return NodeCredentials(admin=user, shared_token=False, token=token)


CurrentClient = Annotated[client_models.Client, Depends(_current_client)]
AdminUser = Annotated[admin_models.AdminUser, Depends(_admin_user)]
NodeCaller = Annotated[NodeCredentials, Depends(_node_caller)]


@dataclass(frozen=True, slots=True)
class Revocations:
    """Announces revoked identities once the response is out (so after the route's transaction committed): the
    API processes close those identities' open WebSockets with 4401."""

    background: BackgroundTasks
    bus: ProgressBus

    def revoke(self, kind: str, subject: str) -> None:
        self.background.add_task(self.bus.publish, revoke_event(kind, subject))


def _revocations(request: Request, background: BackgroundTasks) -> Revocations:
    return Revocations(background=background, bus=request.app.state.bus)


Revoker = Annotated[Revocations, Depends(_revocations)]


def _dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher  # type: ignore[no-any-return]


JobDispatcher = Annotated[Dispatcher, Depends(_dispatcher)]
