"""Publish/subscribe by topic across processes: Postgres LISTEN/NOTIFY, or Redis.

One listening connection per process (per event loop) carries every topic on one channel; the
topic travels in the message and is fanned out in-process to the subscribers of that topic.
Control topics (ending in `CONTROL_SUFFIX`, `":control"`) travel on a second channel of their
own, so that a process following only those (an answer worker waiting for `stop`) does not
receive the stream of everything else; it then has one listening connection on that channel
instead. A message is `(topic, payload)` where the payload is a small JSON object (ids and text
deltas, never HTML): encoded, it must stay under `MAX_PAYLOAD_BYTES`.

Backend: Postgres on the `default` database unless `AI_CHAT_PUBSUB_URL` starts with `redis://`
(or `rediss://`, `unix://`), then Redis pub/sub (`pip install "django-ai-chat[redis]"`).

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

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from django.db import connections, transaction

from django_ai_chat.conf import ai_chat_settings

if TYPE_CHECKING:
    import psycopg

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

logger = logging.getLogger(__name__)

CHANNEL: Final = "django_ai_chat"
"""The Postgres NOTIFY channel / Redis channel every topic but control topics travels on."""

CONTROL_SUFFIX: Final = ":control"
"""Topics ending in this travel on `CONTROL_CHANNEL`: requests to workers, not data streams."""

CONTROL_CHANNEL: Final = "django_ai_chat_control"
"""The channel of control topics (`CONTROL_SUFFIX`)."""

MAX_PAYLOAD_BYTES: Final = 7_000
"""Largest encoded message (topic + JSON payload) accepted; Postgres NOTIFY stops at 8,000."""

QUEUE_SIZE: Final = 1_000
"""Messages buffered per subscription before its backlog is replaced by `RESYNC` messages."""

RESYNC_TYPE: Final = "resync"
"""`payload["type"]` of the message a subscriber receives when messages may have been lost."""

_CONNECT_TIMEOUT: Final = 10.0
_RECONNECT_DELAYS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_LINGER_SECONDS: Final = 30.0
_LISTENER_APP_NAME: Final = "django_ai_chat.pubsub"

Message = tuple[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Encoding


def _check_topic(topic: object) -> None:
    # Typed callers cannot pass a non-str, but the payload travels to other processes: refuse
    # early and clearly rather than deliver to nobody.
    if not isinstance(topic, str) or not topic or "\n" in topic or "\x00" in topic:
        raise ValueError(
            f"Invalid pub/sub topic {topic!r}: use a non-empty string without newlines, "
            "e.g. 'chat:messages:<id>'."
        )


def _channel(topic: str) -> str:
    return CONTROL_CHANNEL if topic.endswith(CONTROL_SUFFIX) else CHANNEL


def _encode(topic: str, payload: dict[str, Any]) -> str:
    _check_topic(topic)
    if not isinstance(payload, dict):
        raise TypeError(f"Pub/sub payload for {topic!r} must be a dict, got {type(payload)!r}.")
    try:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Pub/sub payload for {topic!r} is not JSON-serialisable: {exc}") from exc
    # The topic goes first, in clear, so a listener can skip decoding the JSON of topics nobody
    # in its process follows (every process receives every message).
    data = f"{topic}\n{body}"
    # A character is at most 4 UTF-8 bytes: short messages skip the encode().
    if len(data) * 4 > MAX_PAYLOAD_BYTES and len(data.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"Pub/sub message for {topic!r} is {len(data.encode())} bytes encoded; the limit is "
            f"{MAX_PAYLOAD_BYTES} (Postgres NOTIFY refuses 8,000). Publish ids or small deltas "
            "and let subscribers read the rest from the database."
        )
    return data


# ---------------------------------------------------------------------------------------------
# Backends


def _redis_url() -> str | None:
    url = ai_chat_settings.PUBSUB_URL
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return str(url)
    if url:
        raise ValueError(
            f"AI_CHAT_PUBSUB_URL={url!r} is not supported: leave it unset (Postgres LISTEN/NOTIFY) "
            "or use a 'redis://host:port/db' URL."
        )
    return None


def _pg_params(using: str) -> dict[str, Any]:
    params = dict(connections[using].get_connection_params())
    # Django-specific entries that psycopg.connect() would reject or that only matter for the ORM.
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding", "pool"):
        params.pop(key, None)
    # libpq keepalives: without them a silently dead network (no FIN) would leave the listener,
    # and every subscriber, waiting forever.
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 30)
    params.setdefault("keepalives_interval", 10)
    params.setdefault("keepalives_count", 3)
    return params


class _Transport(Protocol):
    async def connect(self) -> None: ...

    def messages(self) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


class _PgTransport:
    def __init__(self, using: str, channel: str) -> None:
        self._using = using
        self._channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> None:
        import psycopg

        params = _pg_params(self._using)
        params["application_name"] = _LISTENER_APP_NAME
        self._conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        await self._conn.execute(f'LISTEN "{self._channel}"')

    async def messages(self) -> AsyncIterator[str]:
        assert self._conn is not None
        async for notify in self._conn.notifies():
            yield notify.payload

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


_NOTIFY_ONE: Final = "SELECT pg_notify(%s, %s)"
_NOTIFY_MANY: Final = (
    "SELECT pg_notify(c, m) FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS b(c, m, i) "
    "ORDER BY i"
)

_Outgoing = tuple[str, str]
"""A message to send: `(channel, encoded message)`."""


def _without_duplicates(messages: list[_Outgoing]) -> list[list[_Outgoing]]:
    # NOTIFY delivers identical payloads sent in one transaction only once; a batch is one
    # transaction, so split it where a message repeats to keep one publish = one delivery.
    if len(set(messages)) == len(messages):
        return [messages]
    chunks: list[list[_Outgoing]] = [[]]
    seen: set[_Outgoing] = set()
    for message in messages:
        if message in seen:
            chunks.append([])
            seen.clear()
        chunks[-1].append(message)
        seen.add(message)
    return chunks


class _BatchingPublisher:
    """Sends `apublish` messages of one event loop in order, batching those that queue up.

    Hundreds of streams publishing one message per token would each wait for their own round
    trip; instead, publishes that arrive while a round trip is in flight go out together in the
    next one. One batch at a time, so messages leave in the order they were published.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[_Outgoing, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, channel: str, data: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append(((channel, data), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._send([data for data, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _send(self, messages: list[_Outgoing]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()


class _AsyncPgPublisher(_BatchingPublisher):
    """One autocommit connection per event loop; a batch is one `pg_notify` statement."""

    def __init__(self, using: str) -> None:
        super().__init__()
        self._using = using
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _send(self, messages: list[_Outgoing]) -> None:
        for chunk in _without_duplicates(messages):
            await self._send_chunk(chunk)

    async def _send_chunk(self, messages: list[_Outgoing]) -> None:
        import psycopg

        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    **_pg_params(self._using), autocommit=True
                )
            try:
                if len(messages) == 1:
                    await self._conn.execute(_NOTIFY_ONE, messages[0])
                else:
                    channels, bodies = zip(*messages, strict=True)
                    await self._conn.execute(_NOTIFY_MANY, (list(channels), list(bodies)))
                return
            except psycopg.OperationalError:
                # The server closed an idle connection (restart, idle timeout): one fresh try.
                if attempt == 2 or not self._conn.closed:
                    raise

    async def close(self) -> None:
        await super().close()
        if self._conn is not None:
            await self._conn.close()


# ---------------------------------------------------------------------------------------------
# Subscriptions and the per-loop hub


class Subscription:
    """The async iterator of `(topic, payload)` messages that `subscribe()` yields.

    Payload dicts are shared between the subscribers of a process: treat them as read-only.
    """

    __slots__ = ("_closed", "_items", "_waiter", "topics")

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self._items: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def _push(self, message: Message) -> None:
        if len(self._items) >= QUEUE_SIZE:
            logger.warning(
                "Pub/sub subscriber of %r fell %d messages behind; its backlog was replaced by "
                "a resync message.",
                self.topics,
                QUEUE_SIZE,
            )
            self._items.clear()
            self._resync("overflow")
            return
        self._items.append(message)
        self._wake()

    def _resync(self, reason: str, topics: Iterable[str] | None = None) -> None:
        topics = self.topics if topics is None else topics
        self._items.extend((t, {"type": RESYNC_TYPE, "reason": reason}) for t in topics)
        self._wake()

    def _close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Hub:
    """The listener of one event loop, backend and channel, fanning messages out to subscriptions.

    A subscription whose topics travel on both channels is added to both hubs, each with the
    topics of its channel.
    """

    def __init__(self, transport: _Transport, on_idle: Callable[[], None]) -> None:
        self._transport = transport
        self._on_idle = on_idle
        self._by_topic: dict[str, set[Subscription]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._last_error: BaseException | None = None
        self._linger: asyncio.TimerHandle | None = None

    async def add(self, sub: Subscription, topics: tuple[str, ...]) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        for topic in topics:
            self._by_topic.setdefault(topic, set()).add(sub)
        self._count += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if self._ready.is_set():
            return
        # Wait for LISTEN to be in place, so that a caller who subscribes and then reads the
        # database cannot miss a message published in between.
        try:
            await asyncio.wait_for(self._ready.wait(), _CONNECT_TIMEOUT)
        except TimeoutError:
            self.remove(sub, topics)
            raise ConnectionError(
                f"Pub/sub listener could not connect within {_CONNECT_TIMEOUT:g} s "
                f"(last error: {self._last_error!r}). Check the database / AI_CHAT_PUBSUB_URL."
            ) from self._last_error
        except BaseException:
            self.remove(sub, topics)
            raise

    def remove(self, sub: Subscription, topics: tuple[str, ...]) -> None:
        for topic in topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]
        self._count -= 1
        if self._count == 0 and self._task is not None:
            # Keep the connection a while: SSE clients come and go, reconnecting costs ~5 ms.
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(_LINGER_SECONDS, self._stop)

    def _stop(self) -> None:
        self._linger = None
        if self._count == 0 and self._task is not None:
            self._task.cancel()
            self._task = None
            self._ready.clear()
            self._on_idle()

    def _dispatch(self, data: str) -> None:
        topic, _, body = data.partition("\n")
        subs = self._by_topic.get(topic)
        if not subs:
            return
        try:
            payload = json.loads(body)
        except ValueError:
            logger.warning("Dropped a malformed pub/sub message for %r.", topic)
            return
        message = (topic, payload)
        for sub in tuple(subs):
            sub._push(message)

    async def _run(self) -> None:
        attempt = 0
        connected_before = False
        try:
            while True:
                try:
                    await self._transport.connect()
                    self._ready.set()
                    if connected_before:
                        logger.info("Pub/sub listener reconnected.")
                        lost: dict[Subscription, list[str]] = {}
                        for topic, subs in self._by_topic.items():
                            for sub in subs:
                                lost.setdefault(sub, []).append(topic)
                        for sub, topics in lost.items():
                            sub._resync("reconnected", topics)
                    connected_before = True
                    attempt = 0
                    async for data in self._transport.messages():
                        self._dispatch(data)
                    raise ConnectionError("the listening connection closed")
                except Exception as exc:
                    self._ready.clear()
                    self._last_error = exc
                    delay = _RECONNECT_DELAYS[min(attempt, len(_RECONNECT_DELAYS) - 1)]
                    attempt += 1
                    logger.warning(
                        "Pub/sub listener lost its connection (%r); reconnecting in %g s. "
                        "Messages published meanwhile are lost; subscribers get a resync.",
                        exc,
                        delay,
                    )
                    await self._transport.close()
                    await asyncio.sleep(delay)
        finally:
            await self._transport.close()


class _LoopState:
    """Hubs and publishers of one event loop, closed when the loop shuts down."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.hubs: dict[tuple[str, ...], _Hub] = {}
        self.publishers: dict[tuple[str, ...], _Publisher] = {}
        # asyncio has no "loop closing" hook, but asyncio.run(), asgiref and pytest-asyncio all
        # cancel the tasks left at shutdown: this one closes the publishing connections then,
        # instead of leaving them to the garbage collector (and open on the server meanwhile).
        self._guard = loop.create_task(self._close_at_shutdown())

    async def _close_at_shutdown(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for publisher in self.publishers.values():
                with contextlib.suppress(Exception):
                    await publisher.close()


class _Publisher(Protocol):
    async def publish(self, channel: str, data: str) -> None: ...

    async def close(self) -> None: ...


# Hubs and publishers live per event loop: asyncio objects and async connections cannot cross
# loops (tests, `async_to_sync` and ASGI servers each run their own).
_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = _LoopState(loop)
    return state


def _backend_key(using: str) -> tuple[str, ...]:
    url = _redis_url()
    if url is not None:
        return ("redis", url)
    settings = connections[using].settings_dict
    return ("pg", using, str(settings["NAME"]), str(settings["HOST"]), str(settings["PORT"]))


def _hub(using: str, channel: str) -> _Hub:
    hubs = _state().hubs
    backend = _backend_key(using)
    key = (*backend, channel)
    hub = hubs.get(key)
    if hub is None:

        def forget() -> None:
            hubs.pop(key, None)

        transport: _Transport
        if backend[0] == "redis":
            from django_ai_chat import _pubsub_redis

            transport = _pubsub_redis.RedisTransport(backend[1], channel)
        else:
            transport = _PgTransport(using, channel)
        hub = hubs[key] = _Hub(transport, forget)
    return hub


# ---------------------------------------------------------------------------------------------
# Public API


def publish(topic: str, payload: dict[str, Any], *, using: str = "default") -> None:
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
    data = _encode(topic, payload)
    channel = _channel(topic)
    url = _redis_url()
    if url is not None:
        from django_ai_chat import _pubsub_redis

        if not connections[using].in_atomic_block:
            _pubsub_redis.publish(url, channel, data)
            return
        # robust: the transaction is already committed when this runs, so a Redis outage is
        # logged rather than turned into an error for work that did succeed.
        transaction.on_commit(
            lambda: _pubsub_redis.publish(url, channel, data), using=using, robust=True
        )
        return
    with connections[using].cursor() as cursor:
        cursor.execute(_NOTIFY_ONE, [channel, data])


async def apublish(topic: str, payload: dict[str, Any], *, using: str = "default") -> None:
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
    data = _encode(topic, payload)
    publishers = _state().publishers
    key = _backend_key(using)
    publisher = publishers.get(key)
    if publisher is None:
        if key[0] == "redis":
            from django_ai_chat import _pubsub_redis

            publisher = _pubsub_redis.AsyncPublisher(key[1])
        else:
            publisher = _AsyncPgPublisher(using)
        publishers[key] = publisher
    await publisher.publish(_channel(topic), data)


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
        _check_topic(topic)
    sub = Subscription(tuple(dict.fromkeys(topics)))
    by_channel: dict[str, list[str]] = {}
    for topic in sub.topics:
        by_channel.setdefault(_channel(topic), []).append(topic)
    added: list[tuple[_Hub, tuple[str, ...]]] = []
    try:
        for channel, channel_topics in by_channel.items():
            hub, hub_topics = _hub(using, channel), tuple(channel_topics)
            await hub.add(sub, hub_topics)  # removes itself again if it fails
            added.append((hub, hub_topics))
        yield sub
    finally:
        for hub, hub_topics in added:
            hub.remove(sub, hub_topics)
        sub._close()
