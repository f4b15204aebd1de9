"""Throttles built on the `limits` library: failed logins, registrations and submits, in memory or in Redis.

Memory storage serves one API process; with Redis configured (COMFYWS_REDIS_URL or config.yaml `redis:`) every
API process shares the same windows. Moving windows: a locked-out caller is told exactly when to come back.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from api.errors import QuotaExceeded
from api.settings import get_api_settings
from workers.progress import redis_url

log = logging.getLogger(__name__)


class TooManyAttempts(QuotaExceeded):
    """429 with Retry-After: too many failed logins, registrations or submits in the window."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(f"{detail}; retry after {retry_after} s", extra={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Key:
    """One throttled counter: a namespace (what is counted) and the identity or address it counts for."""

    namespace: str
    value: str


class Throttle:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    def retry_after(self, item: RateLimitItem, key: Key) -> int | None:
        """Seconds until `key` may try again, or None when it is under its limit (or the storage is down)."""
        try:
            if self.limiter.test(item, key.namespace, key.value):
                return None
            reset_at = self.limiter.get_window_stats(item, key.namespace, key.value).reset_time
        except Exception:  # a Redis outage must not turn every login into a 500: fail open, loudly
            log.warning("throttle storage unavailable; %s not limited", key.namespace, exc_info=True)
            return None
        return max(1, math.ceil(reset_at - time.time()))

    def hit(self, item: RateLimitItem, key: Key) -> bool:
        """Count one event; False once the limit is reached (this event was over it)."""
        try:
            return self.limiter.hit(item, key.namespace, key.value)
        except Exception:  # see retry_after
            log.warning("throttle storage unavailable; %s not counted", key.namespace, exc_info=True)
            return True

    def clear(self, item: RateLimitItem, key: Key) -> None:
        self.limiter.clear(item, key.namespace, key.value)


@lru_cache
def get_throttle() -> Throttle:
    """Redis storage when Redis is configured (shared by every API process), else this process's memory."""
    url = redis_url()
    return Throttle(RedisStorage(url) if url else MemoryStorage())


def identity_failures() -> RateLimitItem:
    return RateLimitItemPerMinute(get_api_settings().login_failures_per_minute)


def address_failures() -> RateLimitItem:
    return RateLimitItemPerMinute(get_api_settings().login_failures_per_minute_per_address)


def registrations() -> RateLimitItem:
    return RateLimitItemPerHour(get_api_settings().registrations_per_hour)


def submits(per_minute: int) -> RateLimitItem:
    return RateLimitItemPerMinute(per_minute)
