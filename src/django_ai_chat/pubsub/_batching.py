"""Batching of async publishes: what one round trip carries when many publishes queue up."""

from __future__ import annotations

import asyncio

from django_ai_chat.pubsub._codec import Outgoing


class BatchingPublisher:
    """Sends `apublish` messages of one event loop in order, batching those that queue up.

    Hundreds of streams publishing one message per token would each wait for their own round
    trip; instead, publishes that arrive while a round trip is in flight go out together in the
    next one. One batch at a time, so messages leave in the order they were published.
    Subclasses implement `_send`.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Outgoing, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, channel: str, data: str) -> None:
        """Queue one message and wait until the batch carrying it is sent."""
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

    async def _send(self, messages: list[Outgoing]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop sending (messages still queued are not sent)."""
        if self._flusher is not None:
            self._flusher.cancel()
