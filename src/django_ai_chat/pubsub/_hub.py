"""The listening side of one process: per event loop, one hub per backend and channel.

A hub owns one listening transport, fans every message out to the subscriptions of its topic
and, when it reconnects, tells them that messages may have been lost (`RESYNC_TYPE`). Hubs and
publishers live per event loop: asyncio objects and async connections cannot cross loops
(tests, `async_to_sync` and ASGI servers each run their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from django_ai_chat.pubsub._backend import AsyncPublisher, Backend, Transport
from django_ai_chat.pubsub._codec import QUEUE_SIZE, RESYNC_TYPE, Message

logger = logging.getLogger("django_ai_chat.pubsub")

_CONNECT_TIMEOUT: Final = 10.0
_RECONNECT_DELAYS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_LINGER_SECONDS: Final = 30.0


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

    def drain(self) -> list[Message]:
        """Every message received and not read yet, oldest first, without waiting."""
        items = list(self._items)
        self._items.clear()
        return items

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


class Hub:
    """The listener of one event loop, backend and channel, fanning messages out to subscriptions.

    A subscription whose topics travel on both channels is added to both hubs, each with the
    topics of its channel.
    """

    def __init__(self, transport: Transport, on_idle: Callable[[], None]) -> None:
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
        # A notification carries one message or several packed ones (`_codec.pack`): lines
        # alternate topic, JSON body (JSON never holds a raw newline).
        lines = data.split("\n")
        by_topic = self._by_topic
        for index in range(0, len(lines) - 1, 2):
            topic = lines[index]
            subs = by_topic.get(topic)
            if not subs:
                continue
            try:
                payload = json.loads(lines[index + 1])
            except ValueError:
                logger.warning("Dropped a malformed pub/sub message for %r.", topic)
                continue
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
        self.hubs: dict[tuple[str, ...], Hub] = {}
        self.publishers: dict[tuple[str, ...], AsyncPublisher] = {}
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


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = _LoopState(loop)
    return state


def hub(backend: Backend, channel: str) -> Hub:
    """The running event loop's hub of `channel` on `backend` (made on first use)."""
    hubs = _state().hubs
    key = (*backend.key, channel)
    found = hubs.get(key)
    if found is None:

        def forget() -> None:
            hubs.pop(key, None)

        found = hubs[key] = Hub(backend.transport(channel), forget)
    return found


def publisher(backend: Backend) -> AsyncPublisher:
    """The running event loop's publisher on `backend` (made on first use)."""
    publishers = _state().publishers
    found = publishers.get(backend.key)
    if found is None:
        found = publishers[backend.key] = backend.async_publisher()
    return found
