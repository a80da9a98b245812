"""The worker side of a live answer: `AnswerWriter` streams one agent message.

The worker publishes every piece of text at once as a `delta` (reasoning: `thinking`) on the
conversation's topic, but
writes the row only now and then: on `sync` (a relay is catching up), on tool events, on stop and
at the end, so the number of writes does not grow with the answer's length.

Longer than our usual modules: `AnswerWriter` is one state machine (offsets, the publish in
flight, pending syncs, stop, the final write) and its stop scope shares that state; split, each
half would reach into the other's private fields.

Example:
    ```python
    async with AnswerWriter(message.pk, topic=messages_topic(cid), flush=write) as writer:
        async with writer.stoppable():
            async for event in events:
                await writer.append(event.text)  # or `append_thinking` for reasoning
        await writer.finish(complete=True, stopped=writer.stopped)
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, Final, Protocol, Self

from django_ai_chat import pubsub
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.streaming import protocol
from django_ai_chat.streaming.topics import control_topic

__all__ = ["DELTA_SLICE_CHARS", "AnswerWriter", "FlushCallback"]

logger = logging.getLogger("django_ai_chat.streaming")

DELTA_SLICE_CHARS: Final = 1_000
"""Most characters in one published `delta`: at most 6 bytes each as JSON, 1,000 always fit
`pubsub.MAX_PAYLOAD_BYTES` with the payload's other fields, whatever a provider sends at once."""


class FlushCallback(Protocol):
    """Writes an answer's state to its row; supplied by the generated code.

    Called with the whole text so far and the extra fields to set (empty for a plain flush;
    e.g. `tool_calls=[...]` from `AnswerWriter.save`, `complete=True` from `AnswerWriter.finish`;
    `thinking=` the whole reasoning so far, in every call once the answer has some).
    Calls never overlap for one writer and the text only grows between calls, so a guard such as
    `UPDATE … WHERE NOT complete AND length(text) <= len(text)` keeps an older state (a zombie
    worker, a duplicate job) from overwriting a newer one.
    """

    def __call__(self, text: str, fields: dict[str, Any], /) -> Awaitable[object]:
        """Write `text` and `fields` to the row."""


class AnswerWriter:
    """Streams one agent message: publishes deltas at once, writes the row only when needed.

    Use as an async context manager: on entry it subscribes to the topic's control topic and
    answers `sync` requests (flush now, reply `flushed`) and `stop` requests for its message id,
    and, given a `flush_interval`, flushes that often while the text grows. Rows are written only
    through `flush` (text so far), `save` (text + fields, e.g. tool calls), and `finish`
    (the final state), never once per token; `writes` counts them.

    Enter the writer before the row is created (pre-generate the id), so that no `stop` sent for
    the new row can be missed.

    Args:
        message_id: Primary key of the agent message row.
        topic: The conversation's messages topic (`messages_topic(conversation_id)`).
        flush: Writes `(text, fields)` to the row; see `FlushCallback`.
        text: Text the row already holds (when resuming an answer).
        thinking: Reasoning the row already holds (when resuming an answer).
        flush_interval: Seconds between safety flushes (`0`: none); default
            `AI_CHAT_FLUSH_INTERVAL` (`None`, the default: none, see its docstring).
    """

    def __init__(
        self,
        message_id: object,
        *,
        topic: str,
        flush: FlushCallback,
        text: str = "",
        thinking: str = "",
        flush_interval: float | None = None,
    ) -> None:
        self.message_id = str(message_id)
        self.topic = topic
        self.writes = 0
        """Number of times the row was written through this writer."""
        self._flush = flush
        self._text = text
        self._flushed = len(text)
        self._thinking = thinking
        self._thinking_flushed = len(thinking)
        interval = ai_chat_settings.FLUSH_INTERVAL if flush_interval is None else flush_interval
        self._interval = float(interval) if interval else 0.0
        self._lock = asyncio.Lock()
        self._finished = False
        # Every field `save` was given: `finish` writes them again, so a run cut off while a
        # `save` was still writing (a worker shutting down) keeps its tool calls.
        self._fields: dict[str, Any] = {}
        self._stop_requested = False
        self._scope: _StopScope | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Appended pieces not yet published, in order: [payload type, offset, text] (a piece
        # grows while it is the last one); `_sender` publishes them. `_appended` and `_sent`
        # count characters of both kinds, for `_drain`.
        self._unsent: list[list[Any]] = []
        self._appended = 0
        self._sent = 0
        self._sender: asyncio.Task[None] | None = None
        self._send_error: Exception | None = None
        # `_drain` calls waiting for the text up to an offset to be published.
        self._drains: list[tuple[int, asyncio.Future[None]]] = []
        self._exit_stack = contextlib.AsyncExitStack()

    @property
    def text(self) -> str:
        """All text appended so far (including text the row held on creation)."""
        return self._text

    @property
    def thinking(self) -> str:
        """All reasoning appended so far (including what the row held on creation)."""
        return self._thinking

    @property
    def flushed_end(self) -> int:
        """How many characters of `text` the row is known to hold."""
        return self._flushed

    @property
    def stopped(self) -> bool:
        """Whether a `stop` request arrived for this message."""
        return self._stop_requested

    async def __aenter__(self) -> Self:
        events = await self._exit_stack.enter_async_context(
            pubsub.subscribe(control_topic(self.topic))
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(events))]
        if self._interval > 0:
            self._tasks.append(loop.create_task(self._tick()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stop_tasks()
            if exc_type is None:
                await self._drain()
            elif self._sender is not None and not self._sender.done():
                # Left by an error: the row, not the deltas in flight, is what counts now.
                self._sender.cancel()
                await asyncio.wait({self._sender})
        finally:
            await self._exit_stack.aclose()

    async def append(self, delta: str) -> None:
        """Add `delta` to the text and publish it at its offset (no database write).

        Returns without waiting for pub/sub: the delta goes out at once when nothing is being
        published for this message, else together with every delta appended meanwhile, in one
        message, when the publish in flight completes. So the model's stream is never held up
        by pub/sub round trips, and under load fewer, bigger deltas travel; at low load each
        delta still goes out on its own, at once. A delta of any length is fine: text goes out
        in slices of at most `DELTA_SLICE_CHARS` characters at consecutive offsets.

        Raises:
            RuntimeError: `finish` was already called.
            Exception: Publishing an earlier delta failed (e.g. the database is unreachable);
                raised once, by the next `append`.
        """
        self._check_open()
        if not delta:
            return
        self._queue(protocol.DELTA, len(self._text), delta)
        self._text += delta

    async def append_thinking(self, delta: str) -> None:
        """Add `delta` to the reasoning and publish it as a `thinking` payload at its offset.

        Like `append`, for the answer's `thinking` (offsets count there): published at once or
        merged with what queues behind a publish in flight, in the order of all appends, and
        written to the row with every write once there is some.

        Raises:
            RuntimeError: `finish` was already called.
            Exception: Publishing an earlier delta failed; raised once, by the next append.
        """
        self._check_open()
        if not delta:
            return
        self._queue(protocol.THINKING, len(self._thinking), delta)
        self._thinking += delta

    async def flush(self) -> int:
        """Write the text to the row if it grew since the last write; returns the flushed end."""
        async with self._lock:
            if self._grew() and not self._finished:
                await self._write({})
            return self._flushed

    async def save(self, **fields: Any) -> None:
        """Write the text together with `fields` (e.g. tool calls) and publish `message`.

        Use it for state changes the browser should show at once, such as a tool call.
        The fields are kept: `finish` writes them too.
        """
        self._fields.update(fields)  # before any wait: a cancelled save is still kept
        async with self._lock:
            if self._finished:
                raise RuntimeError(f"AnswerWriter for message {self.message_id!r} is finished.")
            await self._write(fields)
        await self._publish(protocol.message(self.message_id))

    async def finish(self, *, text: str | None = None, **fields: Any) -> None:
        """Write the final state (`fields`, e.g. `complete=True`) and publish `message`.

        Every field given to `save` so far is written again with `fields` (which win).

        Args:
            text: Replaces the text (e.g. the text plus an error note); it should only extend
                what was streamed, since browsers already show the streamed part.
            **fields: Passed to the flush callback with the text.
        """
        await self._stop_tasks(keep_listener=True)
        async with self._lock:
            if text is not None:
                self._text = text
            self._finished = True
            await self._write({**self._fields, **fields})
        await self._publish(protocol.message(self.message_id))

    def stoppable(self) -> _StopScope:
        """An async context manager that cancels its body when a `stop` request arrives.

        The cancellation is absorbed on exit (like `asyncio.timeout`); check `stopped`
        afterwards. Wrap async generators in `contextlib.aclosing` so they are closed.
        """
        return _StopScope(self)

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(
                f"AnswerWriter for message {self.message_id!r} is finished; create a new one."
            )
        if self._send_error is not None:
            error, self._send_error = self._send_error, None
            raise error

    def _queue(self, kind: str, offset: int, delta: str) -> None:
        last = self._unsent[-1] if self._unsent else None
        if last is not None and last[0] == kind and last[1] + len(last[2]) == offset:
            last[2] += delta
        else:
            self._unsent.append([kind, offset, delta])
        self._appended += len(delta)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_deltas())

    def _grew(self) -> bool:
        return len(self._text) > self._flushed or len(self._thinking) > self._thinking_flushed

    async def _write(self, fields: dict[str, Any]) -> None:
        text, thinking = self._text, self._thinking
        # Once there is reasoning it goes with every write, so the row's text and thinking are
        # always from one moment (what a relay reads after `flushed`).
        await self._flush(text, {"thinking": thinking, **fields} if thinking else fields)
        self.writes += 1
        self._flushed = len(text)
        self._thinking_flushed = len(thinking)
        await self._publish(self._flushed_payload())

    def _flushed_payload(self) -> protocol.FlushedPayload:
        return protocol.flushed(self.message_id, self._flushed, self._thinking_flushed)

    async def _publish(self, payload: protocol.MessagePayload | protocol.FlushedPayload) -> None:
        # Deltas appended before this message go out before it.
        await self._drain()
        await pubsub.apublish(self.topic, payload)

    async def _send_deltas(self) -> None:
        try:
            while self._unsent:
                kind, offset, text = self._unsent.pop(0)
                build = protocol.thinking if kind == protocol.THINKING else protocol.delta
                for start in range(0, len(text), DELTA_SLICE_CHARS):
                    piece = text[start : start + DELTA_SLICE_CHARS]
                    await pubsub.apublish(self.topic, build(self.message_id, offset + start, piece))
                self._sent += len(text)
                self._wake_drains()
        except Exception as error:
            # The relays repair the gap from the row (`sync`); the answer loop hears of it at
            # its next `append`, and `flushed`/`message` still go out after the final write.
            logger.warning("Publishing deltas of message %r failed: %r", self.message_id, error)
            self._sent += sum(len(piece[2]) for piece in self._unsent)
            self._unsent = []
            self._send_error = self._send_error or error
        finally:
            self._wake_drains(everyone=True)

    async def _drain(self) -> None:
        """Wait until the text appended so far is published (or its publish failed).

        Only that text: deltas appended meanwhile do not hold up a `flushed` reply.
        """
        target = self._appended
        if self._sender is None or self._sender.done() or self._sent >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drains.append((target, waiter))
        await waiter

    def _wake_drains(self, *, everyone: bool = False) -> None:
        waiting = []
        for target, waiter in self._drains:
            if everyone or self._sent >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._drains = waiting

    async def _listen(self, events: AsyncIterator[tuple[str, dict[str, Any]]]) -> None:
        async for _topic, payload in events:
            if payload.get("id") != self.message_id:
                continue
            kind = payload.get("type")
            if kind == protocol.STOP:
                self._request_stop()
            elif kind == protocol.SYNC:
                try:
                    async with self._lock:
                        if self._grew() and not self._finished:
                            await self._write({})
                        else:
                            await self._publish(self._flushed_payload())
                except Exception:
                    logger.exception("Flushing message %r on sync failed.", self.message_id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("Periodic flush of message %r failed.", self.message_id)

    def _request_stop(self) -> None:
        if self._stop_requested:
            return
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def _stop_tasks(self, *, keep_listener: bool = False) -> None:
        keep = self._tasks[:1] if keep_listener else []
        stopping = [t for t in self._tasks if t not in keep]
        self._tasks = keep
        # Holding the lock, no task is half-way through a write when it is cancelled.
        async with self._lock:
            for task in stopping:
                task.cancel()
        for task in stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _StopScope:
    """Cancels the task running its body when the writer receives `stop`; see `stoppable`."""

    def __init__(self, writer: AnswerWriter) -> None:
        self._writer = writer
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("AnswerWriter.stoppable() must be used inside a task.")
        self._writer._scope = self
        if self._writer.stopped:
            self.cancel()
        return self

    def cancel(self) -> None:
        if not self._cancelled and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._writer._scope = None
        if self._cancelled and self._task is not None and self._task.uncancel() == 0:
            # Our cancellation, no other one pending: absorb it (the body may have absorbed it
            # itself, e.g. a loop that turns cancellation into an error event).
            return exc_type is asyncio.CancelledError
        return False
