"""Redis backend of `django_ai_chat.pubsub` (imported only when `AI_CHAT_PUBSUB_URL` is Redis)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

try:
    import redis
    import redis.asyncio as aredis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from django_ai_chat.exceptions import ConfigurationError

    raise ConfigurationError(
        "AI_CHAT_PUBSUB_URL points at Redis but redis-py is not installed: "
        'pip install "django-ai-chat[redis]"'
    ) from exc

from django.db import connections, transaction

from django_ai_chat.pubsub._batching import BatchingPublisher
from django_ai_chat.pubsub._codec import Outgoing

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    # One pooled, thread-safe client per URL for the whole process.
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(url)
    return client


class RedisBackend:
    """Redis pub/sub at `url`; `using` is the database whose transactions `publish` follows."""

    def __init__(self, url: str, *, using: str) -> None:
        self._url = url
        self._using = using

    @property
    def key(self) -> tuple[str, ...]:
        """`("redis", url)`."""
        return ("redis", self._url)

    def transport(self, channel: str) -> RedisTransport:
        """A pub/sub connection of its own on `channel`."""
        return RedisTransport(self._url, channel)

    def async_publisher(self) -> AsyncPublisher:
        """A pooled asyncio client for the running event loop."""
        return AsyncPublisher(self._url)

    def publish(self, channel: str, data: str) -> None:
        """Publish now, or at commit inside `atomic()` (Redis has no transactions of ours)."""
        url = self._url
        if not connections[self._using].in_atomic_block:
            _client(url).publish(channel, data)
            return
        # robust: the transaction is already committed when this runs, so a Redis outage is
        # logged rather than turned into an error for work that did succeed.
        transaction.on_commit(
            lambda: _client(url).publish(channel, data), using=self._using, robust=True
        )


class AsyncPublisher(BatchingPublisher):
    """A pooled asyncio client for one event loop; a batch is one pipeline."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._client = aredis.Redis.from_url(url)

    async def _send(self, messages: list[Outgoing]) -> None:
        if len(messages) == 1:
            await self._client.publish(*messages[0])
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    async def close(self) -> None:
        """Close the pooled connections."""
        await super().close()
        await self._client.aclose()


class RedisTransport:
    """The listening side: one pub/sub connection on one channel."""

    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self._channel = channel
        self._client: aredis.Redis | None = None
        self._pubsub: Any = None

    async def connect(self) -> None:
        """Connect and subscribe; returns once Redis has confirmed the subscription."""
        # No silent retries: redis-py would reconnect and resubscribe behind our back, and the
        # hub could not tell subscribers that messages were lost meanwhile.
        self._client = aredis.Redis.from_url(
            self._url, decode_responses=True, retry=Retry(NoBackoff(), 0)
        )
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self._channel)
        while True:
            message = await self._pubsub.get_message(timeout=10.0)
            if message is None:
                raise ConnectionError(f"Redis did not confirm SUBSCRIBE {self._channel!r}")
            if message["type"] == "subscribe":
                return

    async def messages(self) -> AsyncIterator[str]:
        """Yield message bodies until the connection fails."""
        async for message in self._pubsub.listen():
            if message["type"] == "message":
                yield message["data"]

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()
