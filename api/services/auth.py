"""Client registration, client-credential tokens, admin login and the first admin account."""

from __future__ import annotations

import logging
import secrets
import uuid

from sqlalchemy.orm import Session

from api.errors import Conflict, Unauthorized
from api.schemas import AdminTokenResponse, RegisteredClient, TokenResponse
from api.security import TokenKind, hash_secret, issue_token, new_secret, verify_secret
from api.settings import get_api_settings
from database.admin import repositories as admin_repo
from database.client import repositories as client_repo
from database.enums import AdminRole
from database.types import utcnow

log = logging.getLogger(__name__)

CLIENT_SCOPES = ["tasks", "uploads"]


def register_client(session: Session, *, name: str, description: str) -> RegisteredClient:
    if client_repo.get_client_by_name(session, name) is not None:
        raise Conflict(f"client_name: {name!r} is taken")
    secret = new_secret()
    client = client_repo.create_client(
        session,
        client_id=f"cl_{uuid.uuid4().hex[:20]}",
        name=name,
        description=description,
        secret_hash=hash_secret(secret),
        scopes=CLIENT_SCOPES,
    )
    return RegisteredClient(client_id=client.id, client_secret=secret, client_name=client.name)


def client_token(session: Session, *, client_id: str, client_secret: str) -> TokenResponse:
    client = client_repo.get_client(session, client_id)
    # Same message for an unknown id and a wrong secret: callers learn nothing about which ids exist.
    if client is None or not verify_secret(client_secret, client.secret_hash):
        raise Unauthorized("unknown client or wrong secret")
    if not client.is_active:
        raise Unauthorized("client disabled")
    scope = " ".join(client.scopes or CLIENT_SCOPES)
    token, ttl = issue_token(
        subject=client.id, kind=TokenKind.CLIENT, scope=scope, version=client.secret_version
    )
    return TokenResponse(access_token=token, expires_in=ttl, scope=scope)


def admin_login(session: Session, *, username: str, password: str) -> AdminTokenResponse:
    user = admin_repo.get_admin_user(session, username)
    if user is None or not user.is_active or not verify_secret(password, user.password_hash):
        raise Unauthorized("unknown user or wrong password")
    user.last_login_at = utcnow()
    token, ttl = issue_token(
        subject=user.username, kind=TokenKind.ADMIN, scope=f"admin:{user.role}", version=1
    )
    admin_repo.add_audit(session, actor=user.username, action="admin.login")
    return AdminTokenResponse(access_token=token, expires_in=ttl, role=AdminRole(user.role))


def ensure_admin_account(session: Session) -> str | None:
    """First start: create the admin from COMFYWS_API_ADMIN_PASSWORD, else a random password logged once.

    Returns the generated password (the caller may show it once), None when none was generated."""
    if admin_repo.count_admin_users(session) > 0:
        return None
    settings = get_api_settings()
    configured = settings.admin_password
    password = configured.get_secret_value() if configured is not None else secrets.token_urlsafe(18)
    admin_repo.create_admin_user(
        session, username=settings.admin_username, password_hash=hash_secret(password), role=AdminRole.ADMIN
    )
    if configured is None:
        # The one time this password exists in clear text outside the operator's head.
        log.warning("created admin account %r with generated password: %s", settings.admin_username, password)
        return password
    log.info("created admin account %r", settings.admin_username)
    return None
