"""Client registration, client-credential tokens, admin login and refresh, and the first admin account.

Logins are throttled per identity and per source address (api.throttle); the scrypt checks run on a bounded
number of threads, so a flood of guesses queues behind itself instead of starving every other request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import anyio
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import Conflict, Forbidden, Unauthorized
from api.schemas import RegisteredClient, TokenResponse
from api.security import TokenKind, decode_token, hash_secret, issue_token, new_secret, verify_secret
from api.security_schemas import AdminSessionTokens
from api.settings import get_api_settings
from api.throttle import (
    Key,
    TooManyAttempts,
    address_failures,
    get_throttle,
    identity_failures,
    registrations,
)
from comfyws.config import get_config
from database.admin import repositories as admin_repo
from database.admin.models import AdminUser
from database.client import repositories as client_repo
from database.engine import session_scope
from database.enums import AdminRole, DatabaseName
from database.types import utcnow

log = logging.getLogger(__name__)

CLIENT_SCOPES = ["tasks", "uploads"]
_limiters: dict[int, anyio.CapacityLimiter] = {}


def _hash_limiter() -> anyio.CapacityLimiter:
    """One limiter per event loop (a limiter belongs to the loop it was made in)."""
    loop = id(asyncio.get_running_loop())
    if loop not in _limiters:
        _limiters[loop] = anyio.CapacityLimiter(get_api_settings().hash_concurrency)
    return _limiters[loop]


async def verify_bounded(secret: str, stored: str | None) -> bool:
    """An scrypt check on one of a few threads; an unknown identity costs the same as a wrong secret."""
    return await anyio.to_thread.run_sync(
        verify_secret, secret, stored or _decoy_hash(), limiter=_hash_limiter()
    ) and stored is not None


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(16))


# ---- throttled logins --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginGuard:
    """The two counters of a login: its identity (client id, username) and the caller's address."""

    kind: str
    identity: str
    address: str

    def keys(self) -> list[tuple[Any, Key]]:
        return [
            (identity_failures(), Key(f"login-failures:{self.kind}", self.identity)),
            (address_failures(), Key("login-failures:address", self.address)),
        ]

    def check(self) -> None:
        """429 while either counter is over its limit, whatever the credentials."""
        throttle = get_throttle()
        waits = [w for item, key in self.keys() if (w := throttle.retry_after(item, key)) is not None]
        if waits:
            raise TooManyAttempts(f"too many failed sign-ins for this {self.kind} or address", max(waits))

    async def failed(self) -> None:
        """Count a failure; the one that reaches a limit writes an audit row (one per lock-out, not per try)."""
        throttle = get_throttle()
        locked = [key.namespace for item, key in self.keys() if not _hit_leaves_room(throttle, item, key)]
        if locked:
            detail = {"kind": self.kind, "identity": self.identity[:128], "address": self.address, "by": locked}
            await run_in_threadpool(_audit, "auth.lockout", f"{self.kind}:{self.identity[:100]}", detail)


def _hit_leaves_room(throttle: Any, item: Any, key: Key) -> bool:
    throttle.hit(item, key)
    return throttle.retry_after(item, key) is None


def _audit(action: str, target: str, detail: dict[str, Any]) -> None:
    with session_scope(DatabaseName.ADMIN) as session:
        admin_repo.add_audit(session, actor=f"address:{detail.get('address', '?')}", action=action,
                             target=target, detail=detail)


# ---- clients -----------------------------------------------------------------------------------------------


def register_client(
    session: Session, *, name: str, description: str, limits: dict[str, int | None] | None = None
) -> RegisteredClient:
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
    for field, value in (limits or {}).items():
        setattr(client, field, value)
    return RegisteredClient(client_id=client.id, client_secret=secret, client_name=client.name)


def check_registration(*, registration_token: str | None, admin: AdminUser | None, address: str) -> None:
    """The registration policy: closed (admins only), token (the partners' registration token) or open; every
    self-registration also counts against its address's hourly allowance."""
    if admin is not None:  # its role was checked against the permission table by the route
        return
    settings = get_api_settings()
    mode = settings.registration_mode()
    if mode == "closed":
        raise Forbidden("registration is closed: an admin creates clients (POST /api/v2/admin/clients)")
    if mode == "token" and not (
        registration_token and hmac.compare_digest(registration_token.encode(), settings.registration_secret().encode())
    ):
        raise Forbidden("registration needs the registration token (header X-Registration-Token)")
    throttle, item, key = get_throttle(), registrations(), Key("registrations:address", address)
    if (wait := throttle.retry_after(item, key)) is not None:
        raise TooManyAttempts("too many client registrations from this address", wait)
    throttle.hit(item, key)


def self_registered_limits() -> dict[str, int | None]:
    return get_config().auth.self_registered_quota.model_dump()


@dataclass(frozen=True, slots=True)
class _ClientSnapshot:
    secret_hash: str
    is_active: bool
    version: int
    scopes: list[str]


def _client_snapshot(client_id: str) -> _ClientSnapshot | None:
    with session_scope(DatabaseName.CLIENT) as session:
        client = client_repo.get_client(session, client_id)
        if client is None:
            return None
        return _ClientSnapshot(client.secret_hash, client.is_active, client.secret_version, list(client.scopes))


async def client_token(*, client_id: str, client_secret: str, address: str) -> TokenResponse:
    guard = LoginGuard("client", client_id, address)
    guard.check()
    client = await run_in_threadpool(_client_snapshot, client_id)
    # Same message for an unknown id and a wrong secret: callers learn nothing about which ids exist.
    if not await verify_bounded(client_secret, client.secret_hash if client else None) or client is None:
        await guard.failed()
        raise Unauthorized("unknown client or wrong secret")
    if not client.is_active:
        raise Unauthorized("client disabled")
    scope = " ".join(client.scopes or CLIENT_SCOPES)
    token, ttl = issue_token(subject=client_id, kind=TokenKind.CLIENT, scope=scope, version=client.version)
    return TokenResponse(access_token=token, expires_in=ttl, scope=scope)


# ---- admins ------------------------------------------------------------------------------------------------


def admin_tokens(user: AdminUser) -> AdminSessionTokens:
    scope = f"admin:{user.role}"
    access, ttl = issue_token(subject=user.username, kind=TokenKind.ADMIN, scope=scope, version=user.token_version)
    refresh, refresh_ttl = issue_token(
        subject=user.username, kind=TokenKind.ADMIN_REFRESH, scope=scope, version=user.token_version
    )
    return AdminSessionTokens(
        access_token=access, expires_in=ttl, role=AdminRole(user.role), refresh_token=refresh,
        refresh_expires_in=refresh_ttl,
    )


def _password_hash(username: str) -> str | None:
    with session_scope(DatabaseName.ADMIN) as session:
        user = admin_repo.get_admin_user(session, username)
        return user.password_hash if user is not None and user.is_active else None


def _signed_in(username: str) -> AdminSessionTokens:
    with session_scope(DatabaseName.ADMIN) as session:
        user = admin_repo.get_admin_user(session, username)
        if user is None or not user.is_active:
            raise Unauthorized("unknown user or wrong password")
        user.last_login_at = utcnow()
        admin_repo.add_audit(session, actor=user.username, action="admin.login")
        return admin_tokens(user)


async def admin_login(*, username: str, password: str, address: str) -> AdminSessionTokens:
    guard = LoginGuard("admin", username, address)
    guard.check()
    stored = await run_in_threadpool(_password_hash, username)
    if not await verify_bounded(password, stored):
        await guard.failed()
        raise Unauthorized("unknown user or wrong password")
    return await run_in_threadpool(_signed_in, username)


def refresh_admin(session: Session, refresh_token: str) -> AdminSessionTokens:
    """New access and refresh tokens for a refresh token whose user is still active at the same version."""
    claims = decode_token(refresh_token)
    if claims.kind is not TokenKind.ADMIN_REFRESH:
        raise Unauthorized("a refresh token is required")
    user = admin_repo.get_admin_user(session, claims.subject)
    if user is None or not user.is_active or user.token_version != claims.version:
        raise Unauthorized("token revoked")
    return admin_tokens(user)


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
