"""Publish/subscribe by topic across processes: Postgres LISTEN/NOTIFY, or Redis.

One listening connection per process (per event loop) carries every topic on one channel; the
topic travels in the message and is fanned out in-process to the subscribers of that topic.
Control topics (ending in `CONTROL_SUFFIX`, `":control"`) travel on a second channel of their
own, so that a process following only those (an answer worker waiting for `stop`) does not
receive the stream of everything else; it then has one listening connection on that channel
instead. A message is `(topic, payload)` where the payload is a small JSON object (ids and text
deltas, never HTML): encoded, it must stay under `MAX_PAYLOAD_BYTES`.

Backend: Postgres on the `default` database unless `AI_CHAT_PUBSUB_URL` starts with `redis://`
(or `rediss://`, `unix://`), then Redis pub/sub (`pip install "django-ai-chat[redis]"`). The
backend interface and the choice live in `_backend`; `_postgres` and `_redis` implement it, and
`_hub` (listeners, fan-out, resyncs) is the same for both.

Delivery guarantees (both backends): at most once, in publish order per publishing connection.
`publish()` inside `transaction.atomic()` is delivered when the outermost transaction commits
and never when it rolls back. Messages are lost while a listener is disconnected and when a
subscriber falls behind; both cases are reported in-band, see `RESYNC`.

Overflow policy: each subscription buffers at most `QUEUE_SIZE` messages. When a message arrives
for a full subscription, its backlog is discarded and replaced by one `RESYNC` message per topic
it follows: a slow consumer never blocks the listener or other subscribers, and instead of
working through a stale backlog it re-reads the current state (the database is the truth, pub/sub
is the doorbell).

Example:
    ```python
    async with pubsub.subscribe(f"chat:messages:{cid}") as messages:
        async for topic, payload in messages:
            if payload["type"] == pubsub.RESYNC_TYPE:
                ...  # messages may have been lost: re-read from the database
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from django_ai_chat.pubsub._backend import backend as _backend
from django_ai_chat.pubsub._codec import (
    CHANNEL,
    CONTROL_CHANNEL,
    CONTROL_SUFFIX,
    MAX_PAYLOAD_BYTES,
    QUEUE_SIZE,
    RESYNC_TYPE,
    channel_of,
    check_topic,
    encode,
)
from django_ai_chat.pubsub._hub import Hub, Subscription, hub, publisher

__all__ = [
    "CHANNEL",
    "CONTROL_CHANNEL",
    "CONTROL_SUFFIX",
    "MAX_PAYLOAD_BYTES",
    "QUEUE_SIZE",
    "RESYNC_TYPE",
    "Subscription",
    "apublish",
    "publish",
    "subscribe",
]


def publish(topic: str, payload: Mapping[str, Any], *, using: str = "default") -> None:
    """Publish `payload` to every subscriber of `topic`, in every process.

    Inside `transaction.atomic(using=using)` the message is delivered when the outermost
    transaction commits, and dropped if it rolls back (Postgres NOTIFY is transactional; the
    Redis backend defers through `transaction.on_commit`). Sync only: use `apublish` in async code.

    Args:
        topic: Non-empty string without newlines, e.g. `"chat:messages:<id>"`.
        payload: JSON-serialisable dict, small (ids and deltas, never HTML).
        using: Database alias whose connection (Postgres) or transaction (Redis) is used.

    Raises:
        ValueError: The topic is invalid or the encoded message exceeds `MAX_PAYLOAD_BYTES`.
        TypeError: The payload is not a JSON-serialisable dict.
    """
    data = encode(topic, payload)
    _backend(using).publish(channel_of(topic), data)


async def apublish(topic: str, payload: Mapping[str, Any], *, using: str = "default") -> None:
    """Publish `payload` to every subscriber of `topic` from async code, immediately.

    Uses one autocommit connection per event loop (not Django's connection, so it is never part
    of a transaction). Messages from one event loop arrive in the order they were published.

    Args:
        topic: Non-empty string without newlines, e.g. `"chat:messages:<id>"`.
        payload: JSON-serialisable dict, small (ids and deltas, never HTML).
        using: Database alias to notify through (Postgres backend).

    Raises:
        ValueError: The topic is invalid or the encoded message exceeds `MAX_PAYLOAD_BYTES`.
        TypeError: The payload is not a JSON-serialisable dict.
    """
    data = encode(topic, payload)
    await publisher(_backend(using)).publish(channel_of(topic), data)


@contextlib.asynccontextmanager
async def subscribe(*topics: str, using: str = "default") -> AsyncIterator[Subscription]:
    """Subscribe to `topics` for the duration of an `async with` block.

    On entry the process's listener is connected and listening (started lazily, shared by all
    subscriptions of the event loop), so anything published after entry is received. The
    listener reconnects by itself; subscribers then receive one `{"type": "resync", "reason":
    "reconnected"}` message per topic, as they do (`"reason": "overflow"`) after falling
    `QUEUE_SIZE` messages behind.

    Args:
        *topics: One or more topics, e.g. `"chat:messages:<id>"`.
        using: Database alias to listen on (Postgres backend).

    Yields:
        An async iterator of `(topic, payload)`; it ends when the block exits.

    Raises:
        ValueError: No topic, or an invalid one.
        ConnectionError: The listener could not connect within 10 seconds.
    """
    if not topics:
        raise ValueError("subscribe() needs at least one topic, e.g. 'chat:messages:<id>'.")
    for topic in topics:
        check_topic(topic)
    sub = Subscription(tuple(dict.fromkeys(topics)))
    by_channel: dict[str, list[str]] = {}
    for topic in sub.topics:
        by_channel.setdefault(channel_of(topic), []).append(topic)
    chosen = _backend(using)
    added: list[tuple[Hub, tuple[str, ...]]] = []
    try:
        for channel, channel_topics in by_channel.items():
            channel_hub, hub_topics = hub(chosen, channel), tuple(channel_topics)
            await channel_hub.add(sub, hub_topics)  # removes itself again if it fails
            added.append((channel_hub, hub_topics))
        yield sub
    finally:
        for channel_hub, hub_topics in added:
            channel_hub.remove(sub, hub_topics)
        sub._close()
