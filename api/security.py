"""Secrets and tokens: scrypt hashes for client secrets and admin passwords, HS256 JWTs through joserfc."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from api.errors import Unauthorized
from api.settings import get_api_settings
from database.admin.models import AdminUser

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_ALGORITHM = "HS256"
_LIFETIME_LEEWAY_S = 60


class TokenKind(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"
    ADMIN_REFRESH = "admin_refresh"  # only exchanged at /admin/auth/refresh for a new admin access token


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    kind: TokenKind
    scope: str
    version: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    """Who calls a node route: an operator (or admin), the shared node token, or maybe a node's own token."""

    admin: AdminUser | None
    shared_token: bool
    token: str

    @property
    def actor(self) -> str:
        return self.admin.username if self.admin is not None else "node-token" if self.shared_token else "node"


def hash_secret(secret: str) -> str:
    """A salted scrypt hash in a self-describing string, so the parameters can change later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "$".join(["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.urlsafe_b64decode(digest)
    actual = hashlib.scrypt(
        secret.encode(),
        salt=base64.urlsafe_b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def token_lifetime(kind: TokenKind) -> int:
    """Client tokens live an hour; admin access tokens 15 minutes, renewed with a refresh token (12 hours)."""
    settings = get_api_settings()
    return {
        TokenKind.CLIENT: settings.token_ttl_seconds,
        TokenKind.ADMIN: settings.admin_token_ttl_seconds,
        TokenKind.ADMIN_REFRESH: settings.admin_refresh_ttl_seconds,
    }[kind]


def issue_token(*, subject: str, kind: TokenKind, scope: str, version: int) -> tuple[str, int]:
    """A signed token and its lifetime in seconds; `version` must match the identity's on every use."""
    ttl = token_lifetime(kind)
    now = int(time.time())
    claims = {
        "sub": subject,
        "kind": kind.value,
        "scope": scope,
        "ver": version,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": _ALGORITHM}, claims, _key()), ttl


def decode_token(token: str) -> TokenClaims:
    """Verified claims; a tampered, malformed or expired token raises Unauthorized."""
    try:
        decoded = jwt.decode(token, _key(), algorithms=[_ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            leeway=0,
            sub={"essential": True},
            exp={"essential": True},
            kind={"essential": True},
            ver={"essential": True},
            iat={"essential": True},
        )
        registry.validate(decoded.claims)
        claims = decoded.claims
        kind = TokenKind(claims["kind"])
        # A token minted for longer than this service issues (a leaked key, a forged "100 years") is refused.
        if int(claims["exp"]) - int(claims["iat"]) > token_lifetime(kind) + _LIFETIME_LEEWAY_S:
            raise Unauthorized("invalid token: lifetime longer than this service issues")
        return TokenClaims(
            subject=str(claims["sub"]),
            kind=kind,
            scope=str(claims.get("scope", "")),
            version=int(claims["ver"]),
            expires_at=int(claims["exp"]),
        )
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc


def _key() -> OctKey:
    return _imported_key(get_api_settings().signing_secret())


@lru_cache(maxsize=4)
def _imported_key(secret: str) -> OctKey:
    """Built once per secret, not per request; keyed by the secret so a changed setting takes effect."""
    return OctKey.import_key(secret)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()
