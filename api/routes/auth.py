"""Client registration and tokens, admin login."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status

from api.deps import AdminSession, ClientSession, Credentials, admin_from_token, require_role
from api.errors import BadRequest, Unauthorized
from api.schemas import AdminLoginRequest, RegisteredClient, RegisterRequest, TokenResponse, error_responses
from api.security_schemas import AdminSessionTokens, RefreshRequest
from api.services import auth

router = APIRouter(tags=["auth"], responses=error_responses(400, 401, 403, 409, 422, 429, 500))


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For only from its trusted proxies)."""
    return request.client.host if request.client is not None else "unknown"


@router.post("/api/v2/auth/register", status_code=status.HTTP_201_CREATED, response_model=RegisteredClient)
def register(
    body: RegisterRequest,
    request: Request,
    session: ClientSession,
    admin_db: AdminSession,
    credentials: Credentials,
    registration_token: Annotated[str | None, Header(alias="X-Registration-Token", max_length=512)] = None,
) -> RegisteredClient:
    """Register a client application (per config.yaml auth.registration); its secret is shown once."""
    admin = admin_from_token(admin_db, credentials.credentials) if credentials is not None else None
    if admin is not None:
        require_role(admin, request.method, "/api/v2/auth/register")
    auth.check_registration(registration_token=registration_token, admin=admin, address=client_address(request))
    limits = None if admin is not None else auth.self_registered_limits()
    return auth.register_client(session, name=body.client_name, description=body.description, limits=limits)


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
async def token(credentials: ClientCredentials, request: Request) -> TokenResponse:
    """Client-credentials grant: form, HTTP Basic or JSON; 5 failures a minute per client id lock it (429)."""
    client_id, secret = credentials
    return await auth.client_token(client_id=client_id, client_secret=secret, address=client_address(request))


@router.post("/admin/auth/login", response_model=AdminSessionTokens)
@router.post("/api/v2/admin/auth/login", response_model=AdminSessionTokens, include_in_schema=False)
async def admin_login(body: AdminLoginRequest, request: Request) -> AdminSessionTokens:
    """Admin login: a short-lived access token and a refresh token; failures are throttled (429)."""
    return await auth.admin_login(username=body.username, password=body.password, address=client_address(request))


@router.post("/admin/auth/refresh", response_model=AdminSessionTokens)
@router.post("/api/v2/admin/auth/refresh", response_model=AdminSessionTokens, include_in_schema=False)
def admin_refresh(body: RefreshRequest, session: AdminSession) -> AdminSessionTokens:
    """A new access token (and refresh token) while the account is active and unchanged."""
    return auth.refresh_admin(session, body.refresh_token)
