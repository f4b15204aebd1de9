"""Client registration and tokens, admin login."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status

from api.deps import AdminSession, ClientSession, Credentials, admin_from_token
from api.errors import BadRequest, Forbidden, Unauthorized
from api.schemas import (
    AdminLoginRequest,
    AdminTokenResponse,
    RegisteredClient,
    RegisterRequest,
    TokenResponse,
)
from api.services import auth
from api.settings import get_api_settings

router = APIRouter(tags=["auth"])


@router.post("/api/v2/auth/register", status_code=status.HTTP_201_CREATED, response_model=RegisteredClient)
def register(
    body: RegisterRequest, session: ClientSession, admin_db: AdminSession, credentials: Credentials
) -> RegisteredClient:
    """Register a client application; its secret is shown once."""
    if get_api_settings().registration == "admin":
        if credentials is None:
            raise Forbidden("registration needs an admin token")
        admin_from_token(admin_db, credentials.credentials)
    return auth.register_client(session, name=body.client_name, description=body.description)


async def _client_credentials(request: Request) -> tuple[str, str]:
    """client_id and client_secret from HTTP Basic, a form (OAuth2 client-credentials grant) or JSON."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        return _basic(header[6:])
    if request.headers.get("content-type", "").startswith("application/json"):
        data: Any = await _json(request)
    else:
        data = dict(await request.form())
        grant = data.get("grant_type")
        if grant is not None and grant != "client_credentials":
            raise BadRequest(f"grant_type: unsupported grant {grant!r}; use client_credentials")
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise Unauthorized("client_id and client_secret are required")
    return client_id, secret


async def _json(request: Request) -> Any:
    try:
        data = await request.json()
    except ValueError as exc:
        raise BadRequest("body: not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("body: must be a JSON object")
    return data


def _basic(encoded: str) -> tuple[str, str]:
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    return client_id, secret


ClientCredentials = Annotated[tuple[str, str], Depends(_client_credentials)]


@router.post("/api/v2/auth/token", response_model=TokenResponse)
def token(credentials: ClientCredentials, session: ClientSession) -> TokenResponse:
    """Client-credentials grant: form, HTTP Basic or JSON."""
    client_id, secret = credentials
    return auth.client_token(session, client_id=client_id, client_secret=secret)


@router.post("/admin/auth/login", response_model=AdminTokenResponse)
@router.post("/api/v2/admin/auth/login", response_model=AdminTokenResponse, include_in_schema=False)
def admin_login(body: AdminLoginRequest, session: AdminSession) -> AdminTokenResponse:
    """Admin login with username and password."""
    return auth.admin_login(session, username=body.username, password=body.password)
