"""Dependencies of the routes: database sessions and the authenticated caller, as Annotated aliases."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.dispatcher import Dispatcher
from api.errors import Unauthorized
from api.security import TokenKind, decode_token
from api.settings import get_api_settings
from database.admin import models as admin_models
from database.admin import repositories as admin_repo
from database.client import models as client_models
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import DatabaseName

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
    claims = decode_token(token)
    if claims.kind is not TokenKind.ADMIN:
        raise Unauthorized("an admin token is required")
    user = admin_repo.get_admin_user(session, claims.subject)
    if user is None or not user.is_active:
        raise Unauthorized("token revoked")
    return user


def _current_client(request: Request, credentials: Credentials) -> client_models.Client:
    # A session of its own, closed at once: the request's session would hold a pooled connection until the
    # route returns, and a submit waits on the Prefect server meanwhile (16 submits exhausted the pool).
    with session_scope(DatabaseName.CLIENT) as session:
        client = client_from_token(session, _token(credentials))
    request.state.client_id = client.id  # read by the access log
    return client


def _admin_user(session: AdminSession, credentials: Credentials) -> admin_models.AdminUser:
    return admin_from_token(session, _token(credentials))


def _node_caller(session: AdminSession, credentials: Credentials) -> str:
    """A node presenting the node token, or an admin; returns who it was for the audit log."""
    token = _token(credentials)
    configured = get_api_settings().node_token
    if configured is not None and hmac.compare_digest(token, configured.get_secret_value()):
        return "node-token"
    return admin_from_token(session, token).username


CurrentClient = Annotated[client_models.Client, Depends(_current_client)]
AdminUser = Annotated[admin_models.AdminUser, Depends(_admin_user)]
NodeCaller = Annotated[str, Depends(_node_caller)]


def _dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher  # type: ignore[no-any-return]


JobDispatcher = Annotated[Dispatcher, Depends(_dispatcher)]
