"""The progress bus: job events from flows to the API's WebSockets, over Redis pub/sub or HTTP to the API.

Events are small dicts: `{"type": "status"|"progress"|"preview"|"result"|..., "job_id": ..., "client_id": ...}`.
Flows publish with `await get_publisher().publish(event)`; the API holds one `ProgressBus` that fans events out
to the subscribed sockets of the job's owner (and to admin subscribers, who see everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import redis.asyncio as aioredis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from comfyws.config import get_config
from comfyws.http import async_client
from comfyws.secret_store import internal_token
from comfyws.settings import get_settings

log = logging.getLogger(__name__)

Event = dict[str, Any]
CHANNEL = "comfyws:job-events"
INTERNAL_TOKEN_HEADER = "X-Comfyws-Internal-Token"
EVENTS_PATH = "/internal/events"
_QUEUE_SIZE = 256
CONTROL_TYPES = frozenset({"revoke"})


class ProgressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYWS_", extra="ignore")

    redis_url: str | None = Field(
        None, description="Redis for job events; else config.yaml `redis:`, else HTTP"
    )


def redis_url() -> str | None:
    """COMFYWS_REDIS_URL, else the config.yaml `redis:` block, else None (HTTP to the API)."""
    explicit = ProgressSettings().redis_url
    if explicit:
        return explicit
    try:
        block = get_config().redis
    except Exception:  # noqa: BLE001 - a missing config file means the embedded default
        return None
    return block.url() if block is not None else None


def job_of(event: Event) -> str | None:
    """Flows name the job `task_id` (the clients' word) or `job_id`; both are accepted."""
    return event.get("job_id") or event.get("task_id")


class Subscription:
    """One subscriber's queue; `client_id=None` sees every client's events (admins)."""

    def __init__(self, *, client_id: str | None, job_id: str | None) -> None:
        self.client_id = client_id
        self.job_id = job_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_QUEUE_SIZE)

    def matches(self, event: Event) -> bool:
        if self.client_id is not None and event.get("client_id") != self.client_id:
            return False
        return self.job_id is None or job_of(event) == self.job_id

    def offer(self, event: Event) -> None:
        """Queue without blocking the publisher; a slow reader loses its oldest events, not the newest."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()


class ProgressBus:
    """In-process fan-out; with Redis, events go through the channel so every API process sees them."""

    def __init__(self, *, redis_url: str | None = None) -> None:
        self._subscriptions: set[Subscription] = set()
        self._control_handlers: list[Callable[[Event], None]] = []
        self._redis_url = redis_url
        self._redis: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def backend(self) -> str:
        return "redis" if self._redis_url else "local"

    async def start(self) -> None:
        if self._redis_url is None:
            return
        self._redis = aioredis.from_url(self._redis_url, decode_responses=True)
        self._listener = asyncio.create_task(self._listen(), name="progress-bus-redis")
        # Wait until SUBSCRIBE is acknowledged so events published right after start are not lost.
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, event: Event) -> None:
        if self._redis is not None:
            await self._redis.publish(CHANNEL, json.dumps(event))
        else:
            self.deliver(event)

    def on_control(self, handler: Callable[[Event], None]) -> None:
        """Control events (`type` in CONTROL_TYPES, e.g. a revoked identity) go to these handlers, never to sockets."""
        self._control_handlers.append(handler)

    def deliver(self, event: Event) -> None:
        if event.get("type") in CONTROL_TYPES:
            for handler in self._control_handlers:
                handler(event)
            return
        for subscription in list(self._subscriptions):
            if subscription.matches(event):
                subscription.offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *, client_id: str | None, job_id: str | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(client_id=client_id, job_id=job_id)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                await self._relay(self._redis)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("progress bus lost Redis; reconnecting")
                await asyncio.sleep(1)

    async def _relay(self, client: aioredis.Redis) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    self._ready.set()
                elif message["type"] == "message":
                    self.deliver(json.loads(message["data"]))


class Publisher(Protocol):
    async def publish(self, event: Event) -> None: ...

    async def aclose(self) -> None: ...


class HttpPublisher:
    """POSTs events to the API over one kept-alive connection; a lost event is logged, never raised.

    One sender task per publisher posts whatever has queued since its last request as one JSON list, in order:
    under load many events share a request instead of each paying a round trip. `publish` returns at once for
    the frequent, lossy kinds (progress, previews); every other event (status, node, result) returns only once
    it and everything queued before it were posted, so a flow that ends right after its final status has sent it.
    """

    LOSSY = frozenset({"progress", "preview", "executing", "cached"})
    MAX_BATCH = 64
    MAX_QUEUED = 2048

    def __init__(
        self, api_url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = async_client(
            base_url=api_url, headers={INTERNAL_TOKEN_HEADER: token}, timeout=5.0, transport=transport
        )
        self._pending: list[tuple[Event, asyncio.Future[None] | None]] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is queued or being posted
        self._sender: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        waiter = None if event.get("type") in self.LOSSY else asyncio.get_running_loop().create_future()
        if len(self._pending) >= self.MAX_QUEUED:
            self._drop_oldest_lossy()
        self._pending.append((event, waiter))
        self._idle.clear()
        self._wakeup.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_loop(), name="progress-publisher")
        if waiter is not None:
            await asyncio.shield(waiter)

    def _drop_oldest_lossy(self) -> None:
        for index, (_, waiter) in enumerate(self._pending):
            if waiter is None:
                del self._pending[index]
                return

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
                await self._post([event for event, _ in batch])
                for _, waiter in batch:
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
            self._idle.set()

    async def _post(self, events: list[Event]) -> None:
        try:
            response = await self._client.post(EVENTS_PATH, json=events)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            jobs = sorted({str(job_of(e)) for e in events})
            log.warning("%d progress event(s) of job(s) %s not delivered: %s", len(events), jobs, exc)

    async def aclose(self) -> None:
        """Post what is still queued, then close the connection."""
        if self._sender is not None:
            if not self._sender.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), timeout=10)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self._client.aclose()


class RedisPublisher:
    """PUBLISHes each event on the bus channel."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.from_url(url, decode_responses=True)

    async def publish(self, event: Event) -> None:
        try:
            await self._redis.publish(CHANNEL, json.dumps(event))
        except aioredis.RedisError as exc:
            log.warning("progress event for job %s not delivered: %s", event.get("job_id"), exc)

    async def aclose(self) -> None:
        await self._redis.aclose()


_publishers: dict[int, Publisher] = {}


def get_publisher() -> Publisher:
    """The publisher of the running event loop (connections are bound to a loop), made on first use."""
    loop_id = id(asyncio.get_running_loop())
    publisher = _publishers.get(loop_id)
    if publisher is None:
        publisher = make_publisher()
        _publishers[loop_id] = publisher
    return publisher


def make_publisher() -> Publisher:
    url = redis_url()
    if url:
        return RedisPublisher(url)
    return HttpPublisher(get_settings().api_url, internal_token())
