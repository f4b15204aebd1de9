"""HTTP clients that are cheap to make: one TLS context for the whole process.

httpx builds a fresh `ssl.SSLContext` (and reads the CA bundle) for every client it creates: 50-150 ms of CPU,
paid on the event loop. A job makes several short-lived clients (submit and follow, download), the health monitor
one per probe round, so they all share this context instead.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

import httpx


@cache
def ssl_context() -> ssl.SSLContext:
    """The process's verifying TLS context (built once, on first use)."""
    return httpx.create_ssl_context()


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` that verifies TLS with the shared context; other arguments as httpx takes them."""
    kwargs.setdefault("verify", ssl_context())
    return httpx.AsyncClient(**kwargs)
