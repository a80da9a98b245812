"""The pub/sub backend interface, and the one place that picks a backend from the settings.

A backend (`Backend`) knows how to reach one server: it makes the listening `Transport` of a
channel, the `AsyncPublisher` of an event loop, and publishes from sync code. Everything above
it (hubs, subscriptions, fan-out, resyncs) is the same for every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from django.db import connections

from django_ai_chat.conf import ai_chat_settings

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""`AI_CHAT_PUBSUB_URL` prefixes served by the Redis backend."""


class Transport(Protocol):
    """The listening side of one channel: one connection, reconnected by the hub."""

    async def connect(self) -> None:
        """Connect and listen; returns once messages published from now on are received."""

    def messages(self) -> AsyncIterator[str]:
        """Encoded messages as they arrive, until the connection fails."""

    async def close(self) -> None:
        """Close the connection (idempotent, never raises)."""


class AsyncPublisher(Protocol):
    """Publishes from async code on one event loop, in order."""

    async def publish(self, channel: str, data: str) -> None:
        """Send one encoded message; raises what the server or network raised."""

    async def close(self) -> None:
        """Close the publisher's connections."""


class Backend(Protocol):
    """One pub/sub server (a Postgres database or a Redis URL)."""

    @property
    def key(self) -> tuple[str, ...]:
        """Identifies the server: processes share a listener per (event loop, key, channel)."""

    def transport(self, channel: str) -> Transport:
        """A new listening transport on `channel`."""

    def async_publisher(self) -> AsyncPublisher:
        """A new publisher for the running event loop."""

    def publish(self, channel: str, data: str) -> None:
        """Publish from sync code, transactionally (at commit inside `atomic()`)."""


_backends: dict[tuple[str, ...], Backend] = {}


def backend(using: str) -> Backend:
    """The backend `AI_CHAT_PUBSUB_URL` names, for database alias `using`.

    Read on every call (settings change in tests), but one object per configuration.

    Raises:
        ValueError: `AI_CHAT_PUBSUB_URL` is set to something other than a Redis URL.
        ConfigurationError: It is a Redis URL and redis-py is not installed.
    """
    url = ai_chat_settings.PUBSUB_URL
    if url:
        if not str(url).startswith(REDIS_SCHEMES):
            raise ValueError(
                f"AI_CHAT_PUBSUB_URL={url!r} is not supported: leave it unset (Postgres "
                "LISTEN/NOTIFY) or use a 'redis://host:port/db' URL."
            )
        key: tuple[str, ...] = ("redis", str(url))
    else:
        settings = connections[using].settings_dict
        key = ("pg", using, str(settings["NAME"]), str(settings["HOST"]), str(settings["PORT"]))
    found = _backends.get(key)
    if found is None:
        if key[0] == "redis":
            from django_ai_chat.pubsub import _redis

            found = _redis.RedisBackend(key[1], using=using)
        else:
            from django_ai_chat.pubsub import _postgres

            found = _postgres.PostgresBackend(using, key=key)
        _backends[key] = found
    return found
