"""Secrets without published defaults: given in the environment, else generated once into the data dir (0600).

Every process `comfyws run` starts (API, workers, monitor) shares COMFYWS_DATA_DIR, so each reads the same
generated files. Production (COMFYWS_ENVIRONMENT=production) never generates: a missing secret stops start-up,
named by its environment variable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from comfyws.settings import get_settings

# Values that were ever shipped as defaults (or are obviously placeholders): refused wherever they are given.
KNOWN_DEFAULTS = frozenset(
    {"dev-internal-token", "change-me-development-only", "change-me", "changeme", "secret", "password"}
)
MIN_LENGTH = 16


class SecretError(ValueError):
    """A secret that is missing in production, or set to a published default or a too short value."""


@dataclass(frozen=True, slots=True)
class SecretSpec:
    file_name: str
    env_var: str
    purpose: str


JWT_SECRET = SecretSpec("jwt_secret", "COMFYWS_API_JWT_SECRET", "signs access tokens")
INTERNAL_TOKEN = SecretSpec("internal_token", "COMFYWS_INTERNAL_TOKEN", "workers post job events to the API")
NODE_TOKEN = SecretSpec("node_token", "COMFYWS_API_NODE_TOKEN", "nodes register and send heartbeats")
ALL_STARTUP = (JWT_SECRET, INTERNAL_TOKEN, NODE_TOKEN)  # what every start needs (production: given explicitly)
REGISTRATION_TOKEN = SecretSpec(
    "registration_token", "COMFYWS_API_REGISTRATION_TOKEN", "partners register clients when auth.registration is token"
)


def problem(spec: SecretSpec, given: str | None) -> str | None:
    """Why `given` cannot be used for `spec` (None when it can, or when it may be generated)."""
    if given:
        if given in KNOWN_DEFAULTS:
            return f"{spec.env_var} is a published default value; set a random one (openssl rand -hex 32)"
        if len(given) < MIN_LENGTH:
            return f"{spec.env_var} is shorter than {MIN_LENGTH} characters"
        return None
    if get_settings().environment == "production":
        return f"{spec.env_var} must be set in production ({spec.purpose})"
    return None


def resolve(spec: SecretSpec, given: str | None) -> str:
    """The secret to use: the given value, else the one stored in the data dir (made on first use)."""
    reason = problem(spec, given)
    if reason is not None:
        raise SecretError(reason)
    if given:
        return given
    return stored(secrets_dir() / spec.file_name)


def secrets_dir() -> Path:
    return get_settings().data_dir / "secrets"


@lru_cache(maxsize=32)
def stored(path: Path) -> str:
    """Read the secret at `path`, creating it first when absent; concurrent first starts agree on one value."""
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won the race: read its value
            os.link(scratch, path)  # atomic: the file appears whole or not at all
    finally:
        scratch.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


def internal_token() -> str:
    """The token workers present on POST /internal/events (COMFYWS_INTERNAL_TOKEN, else the stored one)."""
    return resolve(INTERNAL_TOKEN, get_settings().internal_token)
