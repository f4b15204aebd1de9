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

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_ALGORITHM = "HS256"


class TokenKind(StrEnum):
    CLIENT = "client"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    kind: TokenKind
    scope: str
    version: int
    expires_at: int


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


def issue_token(*, subject: str, kind: TokenKind, scope: str, version: int) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    ttl = get_api_settings().token_ttl_seconds
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
            leeway=0, sub={"essential": True}, exp={"essential": True}, kind={"essential": True}
        )
        registry.validate(decoded.claims)
        claims = decoded.claims
        return TokenClaims(
            subject=str(claims["sub"]),
            kind=TokenKind(claims["kind"]),
            scope=str(claims.get("scope", "")),
            version=int(claims.get("ver", 0)),
            expires_at=int(claims["exp"]),
        )
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc


def _key() -> OctKey:
    return _imported_key(get_api_settings().jwt_secret.get_secret_value())


@lru_cache(maxsize=4)
def _imported_key(secret: str) -> OctKey:
    """Built once per secret, not per request; keyed by the secret so a changed setting takes effect."""
    return OctKey.import_key(secret)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()
