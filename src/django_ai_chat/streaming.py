"""The live-answer protocol, both ends: `AnswerWriter` (worker) and `relay` (SSE view).

An agent answer is one database row that grows while the model streams. The worker publishes
every piece of text at once as a `delta` (`{"type": "delta", "id", "offset", "text"}`) on the
conversation's topic, but writes the row only now and then (`AnswerWriter`). A browser follows
through an SSE stream (`relay`) that subscribes first, asks the worker to flush (`sync`), reads
the rows, sends what the browser lacks beyond its cursor and then forwards live deltas,
de-duplicated by offset. A reload, a dropped connection or a restarted web server therefore
ends with exactly the model's text: no gap, no duplicate. See `docs/architecture.md`.

Payloads on `chat:messages:<conversation_id>` (`messages_topic`): `message` (a row changed:
re-read it), `delta`, `flushed` (worker → relay: the row holds `end` characters). Requests to
the worker travel on the topic's control topic (`<topic>:control`, on pub/sub's control
channel), so that a worker does not receive the stream of deltas it and the other workers
publish: `sync` (relay → worker: flush now) and `stop` (`request_stop`, from the stop action).

Example (worker):
    ```python
    async with AnswerWriter(message.pk, topic=messages_topic(cid), flush=write) as writer:
        async with writer.stoppable():
            async for event in events:
                await writer.append(event.text)
        await writer.finish(complete=True, stopped=writer.stopped)
    ```

Example (view):
    ```python
    return event_stream_response(relay(
        messages_topic=messages_topic(cid), cursor=Cursor.from_request(request),
        load_messages=..., load_message=..., render_message=...,
    ))
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, Self, TypeAlias

from django_ai_chat import pubsub
from django_ai_chat.conf import ai_chat_settings

if TYPE_CHECKING:
    from django.http import HttpRequest, StreamingHttpResponse

__all__ = [
    "DELTA_SLICE_CHARS",
    "KEEPALIVE_SECONDS",
    "SYNC_TIMEOUT_SECONDS",
    "AnswerWriter",
    "ConversationEvent",
    "Cursor",
    "FlushCallback",
    "StreamedMessage",
    "aconversation_changed",
    "amessage_changed",
    "control_topic",
    "conversation_changed",
    "conversations_topic",
    "event_stream_response",
    "message_changed",
    "messages_topic",
    "relay",
    "request_stop",
]

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS: Final = 15.0
"""Idle time after which `relay` sends an SSE comment, so proxies keep the connection open."""

SYNC_TIMEOUT_SECONDS: Final = 1.0
"""How long `relay` waits for the worker's `flushed` reply before reading the rows anyway."""

DELTA_SLICE_CHARS: Final = 1_000
"""Most characters in one published `delta`: at most 6 bytes each as JSON, 1,000 always fit
`pubsub.MAX_PAYLOAD_BYTES` with the payload's other fields, whatever a provider sends at once."""

_RETRY_MS: Final = 1000
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def messages_topic(conversation_id: object) -> str:
    """The pub/sub topic of one conversation's messages: `chat:messages:<conversation_id>`."""
    return f"chat:messages:{conversation_id}"


def conversations_topic(user_id: object | None) -> str:
    """The pub/sub topic of a user's conversation list (`None`: no-user mode, `...:all`)."""
    return f"chat:conversations:{'all' if user_id is None else user_id}"


def request_stop(topic: str, message_id: object) -> None:
    """Ask the worker streaming message `message_id` on `topic` to stop; the text so far stays.

    Sync; inside `transaction.atomic()` the request goes out at commit (see `pubsub.publish`).
    """
    pubsub.publish(control_topic(topic), {"type": "stop", "id": str(message_id)})


def control_topic(topic: str) -> str:
    """The topic of requests to the worker answering on `topic` (`sync`, `stop`)."""
    return f"{topic}{pubsub.CONTROL_SUFFIX}"


ConversationEvent: TypeAlias = Literal["created", "updated", "deleted"]
"""What happened to a conversation, as announced on its owner's conversations topic."""


def message_changed(conversation_id: object, message_id: object) -> None:
    """Announce that message `message_id` was created, changed or deleted: pages re-read it.

    Sync; inside `transaction.atomic()` it goes out at commit, and never for a rolled-back
    write (see `pubsub.publish`). For a deletion, take the ids before deleting: Django sets a
    deleted instance's `pk` to `None`.

    Raises:
        ValueError: An id is `None` (e.g. read from an instance after `delete()`).
    """
    pubsub.publish(messages_topic(_id(conversation_id)), _message_payload(message_id))


async def amessage_changed(conversation_id: object, message_id: object) -> None:
    """Async `message_changed`, published at once (on its own connection: no transaction)."""
    await pubsub.apublish(messages_topic(_id(conversation_id)), _message_payload(message_id))


def conversation_changed(
    owner_id: object | None, conversation_id: object, event: ConversationEvent
) -> None:
    """Announce to the owner's conversation lists (`None`: no-user mode) that one changed.

    Sync, transactional like `message_changed`; for `"deleted"`, call it before the delete
    (or with ids taken before it).

    Raises:
        ValueError: `conversation_id` is `None`, or `event` is not one of `ConversationEvent`.
    """
    pubsub.publish(conversations_topic(owner_id), _conversation_payload(conversation_id, event))


async def aconversation_changed(
    owner_id: object | None, conversation_id: object, event: ConversationEvent
) -> None:
    """Async `conversation_changed`, published at once."""
    payload = _conversation_payload(conversation_id, event)
    await pubsub.apublish(conversations_topic(owner_id), payload)


def _id(value: object) -> str:
    # A deleted instance's pk is None: announcing "None" would leave a ghost on every page.
    if value is None:
        raise ValueError(
            "Cannot announce a change of id None: take the id before deleting the row "
            "(Django sets a deleted instance's pk to None)."
        )
    return str(value)


def _message_payload(message_id: object) -> dict[str, Any]:
    return {"type": "message", "id": _id(message_id)}


def _conversation_payload(conversation_id: object, event: str) -> dict[str, Any]:
    if event not in ("created", "updated", "deleted"):
        raise ValueError(
            f"Unknown conversation event {event!r}: use 'created', 'updated' or 'deleted'."
        )
    return {"type": "conversation", "id": _id(conversation_id), "event": event}


# ---------------------------------------------------------------------------------------------
# Worker side


class FlushCallback(Protocol):
    """Writes an answer's state to its row; supplied by the generated code.

    Called with the whole text so far and the extra fields to set (empty for a plain flush;
    e.g. `tool_calls=[...]` from `AnswerWriter.save`, `complete=True` from `AnswerWriter.finish`).
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
        flush_interval: float | None = None,
    ) -> None:
        self.message_id = str(message_id)
        self.topic = topic
        self.writes = 0
        """Number of times the row was written through this writer."""
        self._flush = flush
        self._text = text
        self._flushed = len(text)
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
        # Appended text not yet published, from offset `_unsent_at`; `_sender` publishes it.
        self._unsent = ""
        self._unsent_at = 0
        self._sent_end = len(text)
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
        if self._finished:
            raise RuntimeError(
                f"AnswerWriter for message {self.message_id!r} is finished; create a new one."
            )
        if self._send_error is not None:
            error, self._send_error = self._send_error, None
            raise error
        if not delta:
            return
        if not self._unsent:
            self._unsent_at = len(self._text)
        self._text += delta
        self._unsent += delta
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_deltas())

    async def flush(self) -> int:
        """Write the text to the row if it grew since the last write; returns the flushed end."""
        async with self._lock:
            if len(self._text) > self._flushed and not self._finished:
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
        await self._publish({"type": "message", "id": self.message_id})

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
        await self._publish({"type": "message", "id": self.message_id})

    def stoppable(self) -> _StopScope:
        """An async context manager that cancels its body when a `stop` request arrives.

        The cancellation is absorbed on exit (like `asyncio.timeout`); check `stopped`
        afterwards. Wrap async generators in `contextlib.aclosing` so they are closed.
        """
        return _StopScope(self)

    # -- internals ----------------------------------------------------------------------------

    async def _write(self, fields: dict[str, Any]) -> None:
        text = self._text
        await self._flush(text, fields)
        self.writes += 1
        self._flushed = len(text)
        await self._publish({"type": "flushed", "id": self.message_id, "end": self._flushed})

    async def _publish(self, payload: dict[str, Any]) -> None:
        # Deltas appended before this message go out before it.
        await self._drain()
        await pubsub.apublish(self.topic, payload)

    async def _send_deltas(self) -> None:
        try:
            while self._unsent:
                text, offset = self._unsent, self._unsent_at
                self._unsent = ""
                for start in range(0, len(text), DELTA_SLICE_CHARS):
                    payload = {
                        "type": "delta",
                        "id": self.message_id,
                        "offset": offset + start,
                        "text": text[start : start + DELTA_SLICE_CHARS],
                    }
                    await pubsub.apublish(self.topic, payload)
                self._sent_end = offset + len(text)
                self._wake_drains()
        except Exception as error:
            # The relays repair the gap from the row (`sync`); the answer loop hears of it at
            # its next `append`, and `flushed`/`message` still go out after the final write.
            logger.warning("Publishing deltas of message %r failed: %r", self.message_id, error)
            self._unsent = ""
            self._send_error = self._send_error or error
        finally:
            self._wake_drains(everyone=True)

    async def _drain(self) -> None:
        """Wait until the text appended so far is published (or its publish failed).

        Only that text: deltas appended meanwhile do not hold up a `flushed` reply.
        """
        target = len(self._text)
        if self._sender is None or self._sender.done() or self._sent_end >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drains.append((target, waiter))
        await waiter

    def _wake_drains(self, *, everyone: bool = False) -> None:
        waiting = []
        for target, waiter in self._drains:
            if everyone or self._sent_end >= target:
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
            if kind == "stop":
                self._request_stop()
            elif kind == "sync":
                try:
                    async with self._lock:
                        if len(self._text) > self._flushed and not self._finished:
                            await self._write({})
                        else:
                            await self._publish(
                                {"type": "flushed", "id": self.message_id, "end": self._flushed}
                            )
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


# ---------------------------------------------------------------------------------------------
# SSE side


class StreamedMessage(Protocol):
    """What `relay` needs of a message row (a generated `Message` instance fits)."""

    @property
    def id(self) -> Any:
        """Primary key (a UUID v7 or its string)."""

    @property
    def text(self) -> str:
        """The text the row holds."""

    @property
    def complete(self) -> bool:
        """`False` while an agent answer is still streaming."""


@dataclass(frozen=True)
class Cursor:
    """What the browser already holds, sent on (re)connect.

    Attributes:
        after: Id of the newest message the browser shows (`None`: none).
        partial: Id of an incomplete message the browser is streaming, if any.
        end: How many characters of `partial` the browser holds.
    """

    after: str | None = None
    partial: str | None = None
    end: int = 0

    def __str__(self) -> str:
        """The SSE `id:` form: `<after>` or `<after>/<partial>:<end>` (`-` for no `after`)."""
        head = self.after or "-"
        return f"{head}/{self.partial}:{self.end}" if self.partial else head

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """Parse the `str()` form (as EventSource sends it back in `Last-Event-ID`).

        Returns:
            The cursor, or `None` when `value` is empty or malformed.
        """
        if not value:
            return None
        head, _, tail = value.strip().partition("/")
        partial, _, end = tail.partition(":")
        return cls._make(None if head == "-" else head, partial or None, end or "0")

    @classmethod
    def from_query(cls, query: Any) -> Cursor:
        """Read the query parameters `after`, `partial` and `end` (malformed ones are ignored)."""
        made = cls._make(query.get("after") or None, query.get("partial") or None, query.get("end"))
        return made or cls()

    @classmethod
    def from_request(cls, request: HttpRequest) -> Cursor:
        """The cursor of an SSE request: `Last-Event-ID` when present, else query parameters.

        EventSource reconnects with the page's original URL, whose query parameters are stale
        by then, and the last `id:` it received in `Last-Event-ID`, which is current.
        """
        return cls.parse(request.headers.get("Last-Event-ID")) or cls.from_query(request.GET)

    @classmethod
    def _make(cls, after: str | None, partial: str | None, end: Any) -> Cursor | None:
        try:
            return cls(
                after=_uuid_str(after) if after else None,
                partial=_uuid_str(partial) if partial else None,
                end=max(0, int(end or 0)) if partial else 0,
            )
        except (TypeError, ValueError):
            return None


def _uuid_str(value: object) -> str:
    # Canonical lowercase form: string order then equals UUID v7 (time) order.
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


class _Relay:
    """The state of one SSE connection: what the browser holds, what it still lacks."""

    def __init__(
        self,
        cursor: Cursor,
        *,
        messages_topic: str | None,
        load_messages: Callable[[str | None], Awaitable[Sequence[StreamedMessage]]],
        load_message: Callable[[str], Awaitable[StreamedMessage | None]],
        render_message: Callable[[StreamedMessage], Awaitable[str]],
        render_conversation: Callable[[dict[str, Any]], Awaitable[str | None]] | None,
        coalesce: float = 0.0,
    ) -> None:
        self.after = cursor.after
        # Incomplete messages the browser streams: id → characters it holds.
        self.sent: dict[str, int] = {cursor.partial: cursor.end} if cursor.partial else {}
        self.latest_partial = cursor.partial
        self.complete: set[str] = set()
        # Messages with a gap (deltas missed): their deltas wait here for the worker's flush.
        self.waiting: dict[str, list[dict[str, Any]]] = {}
        self.topic = messages_topic
        self._load_messages = load_messages
        self._load_message = load_message
        self._render_message = render_message
        self._render_conversation = render_conversation
        self.coalesce = coalesce
        # A live delta held back to merge with the ones right behind it: (id, offset, text).
        self.held: tuple[str, int, str] | None = None
        self.held_since = 0.0
        # When the last live delta of each streaming message went out (loop time).
        self.last_sent: dict[str, float] = {}

    def cursor(self) -> str:
        partial = self.latest_partial if self.latest_partial in self.sent else None
        return str(Cursor(self.after, partial, self.sent[partial] if partial else 0))

    async def catch_up(
        self, events: pubsub.Subscription, timeout: float
    ) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        """Sync incomplete rows, read what the browser lacks; returns chunks and held events."""
        held: list[tuple[str, dict[str, Any]]] = []
        if self.topic is None:
            return [], held
        rows = list(await self._load_messages(self.after))
        # The message the browser was streaming may have completed meanwhile; when it is also
        # the newest one (`after`), `load_messages` leaves it out: read it on its own.
        gone: list[str] = []
        listed = {_uuid_str(row.id) for row in rows}
        for message_id in [m for m in self.sent if m not in listed]:
            row = await self._load_message(message_id)
            if row is None:
                gone.append(message_id)
            else:
                rows.append(row)
        rows.sort(key=lambda row: _uuid_str(row.id))
        incomplete = [_uuid_str(row.id) for row in rows if not row.complete]
        if incomplete:
            pending = set(incomplete)
            for message_id in incomplete:
                await pubsub.apublish(control_topic(self.topic), {"type": "sync", "id": message_id})
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while pending and (remaining := deadline - loop.time()) > 0:
                try:
                    topic, payload = await asyncio.wait_for(anext(events), remaining)
                except (TimeoutError, StopAsyncIteration):
                    break
                if payload.get("type") == "flushed":
                    pending.discard(str(payload.get("id")))
                held.append((topic, payload))
            fresh = {mid: await self._load_message(mid) for mid in incomplete}
            reread: list[StreamedMessage] = []
            for row in rows:
                current = row if row.complete else fresh.get(_uuid_str(row.id))
                if current is not None:
                    reread.append(current)
            rows = reread
        chunks: list[str] = []
        for message_id in gone:
            self.sent.pop(message_id, None)
            chunks.append(_sse("removed", json.dumps({"id": message_id})))
        for row in rows:
            chunks += await self.send_row(row)
        return chunks, held

    async def send_row(self, row: StreamedMessage) -> list[str]:
        """Send one row: a `delta` with the missing text when the browser streams it, else HTML."""
        held = self.flush()
        if held:
            return held + await self.send_row(row)
        message_id = _uuid_str(row.id)
        if self.after is None or message_id > self.after:
            self.after = message_id
        have = self.sent.get(message_id)
        if not row.complete and have is not None and have <= len(row.text):
            self.latest_partial = message_id
            if have == len(row.text):
                return []
            self.sent[message_id] = len(row.text)
            return [self._delta(message_id, have, row.text[have:])]
        if not row.complete and have is not None:
            # The browser holds more than the row (a flush is still on its way): keep going.
            return []
        if row.complete:
            self.sent.pop(message_id, None)
            self.last_sent.pop(message_id, None)
            self.complete.add(message_id)
        else:
            self.sent[message_id] = len(row.text)
            self.latest_partial = message_id
        html = await self._render_message(row)
        return [_sse("message", html, self.cursor())]

    async def handle(self, payload: dict[str, Any]) -> list[str]:
        """Turn one pub/sub payload into SSE chunks."""
        kind = payload.get("type")
        if kind not in ("delta", "flushed"):
            # Whatever else goes out must not overtake a held delta.
            held = self.flush()
            if held:
                return held + await self.handle(payload)
        if kind == "conversation":
            if self._render_conversation is None:
                return []
            data = await self._render_conversation(payload)
            return [] if data is None else [_sse("conversation", data)]
        if kind == pubsub.RESYNC_TYPE:
            return await self._resync()
        try:
            message_id = _uuid_str(payload.get("id"))
        except ValueError:
            return []
        if kind == "message":
            return await self._reread(message_id)
        if kind == "delta":
            return await self._on_delta(message_id, payload)
        if kind == "flushed" and message_id in self.waiting:
            deltas = self.waiting.pop(message_id)
            chunks = await self._reread(message_id)
            for delta in deltas:
                chunks += await self._on_delta(message_id, delta)
            return chunks
        return []

    async def _reread(self, message_id: str) -> list[str]:
        row = await self._load_message(message_id)
        if row is None:
            self.sent.pop(message_id, None)
            self.waiting.pop(message_id, None)
            return [*self.flush(), _sse("removed", json.dumps({"id": message_id}))]
        self.sent.pop(message_id, None)  # a state change: the browser gets the whole message
        return await self.send_row(row)

    async def _on_delta(self, message_id: str, payload: dict[str, Any]) -> list[str]:
        if message_id in self.complete:
            return []
        if message_id in self.waiting:
            self.waiting[message_id].append(payload)
            return []
        offset, text = int(payload.get("offset", 0)), str(payload.get("text", ""))
        chunks: list[str] = []
        have = self.sent.get(message_id)
        if have is None:
            # A message this connection has not seen yet: read it first.
            chunks += await self._reread(message_id)
            have = self.sent.get(message_id)
            if have is None:
                return chunks
        end = offset + len(text)
        if end <= have:
            return chunks
        if offset > have:
            row = await self._load_message(message_id)
            if row is not None and not row.complete and len(row.text) >= offset:
                chunks += await self.send_row(row)
                have = self.sent.get(message_id, have)
            if offset > have:
                # Deltas were missed and the row lacks them too: ask for a flush, hold deltas.
                self.waiting[message_id] = [payload]
                if self.topic is not None:
                    await pubsub.apublish(
                        control_topic(self.topic), {"type": "sync", "id": message_id}
                    )
                return chunks
            if end <= have:
                return chunks
        text = text[have - offset :]
        self.sent[message_id] = end
        self.latest_partial = message_id
        return [*chunks, *self._hold(message_id, have, text)]

    def _hold(self, message_id: str, offset: int, text: str) -> list[str]:
        """Send a live delta at once, or hold it when one went out less than `coalesce` ago.

        Leading edge: the first delta of an answer, and any delta after a pause of `coalesce`,
        goes out immediately (no added latency); only the deltas of a burst wait, merged into
        one event due `coalesce` after the previous one sent.
        """
        if self.coalesce <= 0:
            return [self._delta(message_id, offset, text)]
        held = self.held
        if held is not None and held[0] == message_id and held[1] + len(held[2]) == offset:
            self.held = (message_id, held[1], held[2] + text)
            return []
        chunks = self.flush()
        now = asyncio.get_running_loop().time()
        last = self.last_sent.get(message_id)
        if last is None or now - last >= self.coalesce:
            self.last_sent[message_id] = now
            return [*chunks, self._delta(message_id, offset, text)]
        self.held = (message_id, offset, text)
        self.held_since = last
        return chunks

    def flush(self) -> list[str]:
        """The held delta as an SSE chunk (nothing when none is held)."""
        if self.held is None:
            return []
        message_id, offset, text = self.held
        self.held = None
        self.last_sent[message_id] = asyncio.get_running_loop().time()
        return [self._delta(message_id, offset, text)]

    def flush_due(self) -> float | None:
        """Seconds until the held delta must go out (`None`: nothing held)."""
        if self.held is None:
            return None
        return self.held_since + self.coalesce - asyncio.get_running_loop().time()

    async def _resync(self) -> list[str]:
        # Messages may have been lost: every incomplete message is re-read in full.
        chunks: list[str] = []
        self.waiting.clear()
        rows = await self._load_messages(self.after)
        for row in rows:
            self.sent.pop(_uuid_str(row.id), None)
            chunks += await self.send_row(row)
        return chunks

    def _delta(self, message_id: str, offset: int, text: str) -> str:
        data = json.dumps(
            {"id": message_id, "offset": offset, "text": text},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return _sse("delta", data, self.cursor())


async def relay(
    *,
    cursor: Cursor,
    messages_topic: str | None,
    load_messages: Callable[[str | None], Awaitable[Sequence[StreamedMessage]]],
    load_message: Callable[[str], Awaitable[StreamedMessage | None]],
    render_message: Callable[[StreamedMessage], Awaitable[str]],
    conversations_topic: str | None = None,
    render_conversation: Callable[[dict[str, Any]], Awaitable[str | None]] | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
    sync_timeout: float = SYNC_TIMEOUT_SECONDS,
    coalesce: float = 0.0,
) -> AsyncIterator[str]:
    """Server-sent events for one browser: catch-up from the database, then live events.

    Order matters and is what makes resuming exact: subscribe first; publish `sync` for each
    incomplete message and wait up to `sync_timeout` for the worker's `flushed`; read the rows;
    send what the browser lacks beyond `cursor`; then forward live events, deltas de-duplicated
    by offset (a delta ending at or before what was sent is dropped, an overlapping one is
    trimmed, a gap triggers a flush and a re-read). Every `message`/`delta` event carries the
    cursor as its SSE `id:`, which EventSource sends back as `Last-Event-ID`.

    SSE events: `message` (`data`: HTML from `render_message`), `delta` (`data`: JSON
    `{"id", "offset", "text"}`), `removed` (`data`: JSON `{"id"}`, the row is gone),
    `conversation` (`data`: from `render_conversation`), and a comment every `keepalive` seconds.
    Closing the generator (client disconnect) ends the subscription.

    Args:
        cursor: What the browser holds (`Cursor.from_request(request)`).
        messages_topic: `messages_topic(conversation_id)`, or `None` on a page without a
            conversation (then only conversation events are relayed).
        load_messages: `await load_messages(after)` → the conversation's rows with an id greater
            than `after` (all when `None`) plus every incomplete row, oldest first. It may bound
            them to the newest N (the generated view does, to a page's worth), as long as every
            row newer than `after` within those N is returned. Must check the actor: this is
            the authorisation point.
        load_message: `await load_message(id)` → that row of this conversation, or `None`.
        render_message: `await render_message(row)` → the message's HTML (its element carries
            `id="message-<uuid>"`, `data-end` and `data-complete`).
        conversations_topic: `conversations_topic(user_id)` to relay sidebar changes.
        render_conversation: `await render_conversation(payload)` → `data` of a
            `conversation` event (`None` skips it).
        keepalive: Seconds of silence before a keep-alive comment.
        sync_timeout: Seconds to wait for the worker to flush on (re)connect.
        coalesce: Seconds a live delta may wait to be merged with the deltas right behind it
            into one event (`0`: one event per delta). Leading edge: a delta goes out at once
            unless another one of the same message went out less than `coalesce` ago, so the
            first token and isolated ones are never delayed; only bursts are merged. Models
            stream a few characters per token, so per-token events cost several times the text
            in SSE framing (gzip, see `event_stream_response`, takes most of it away); a few
            tens of milliseconds bound the events per message at high token rates.

    Yields:
        SSE-formatted strings, each one complete event or comment.
    """
    topics = [t for t in (messages_topic, conversations_topic) if t]
    if not topics:
        raise ValueError("relay() needs messages_topic, conversations_topic or both.")
    state = _Relay(
        cursor,
        messages_topic=messages_topic,
        load_messages=load_messages,
        load_message=load_message,
        render_message=render_message,
        render_conversation=render_conversation,
        coalesce=coalesce,
    )
    async with pubsub.subscribe(*topics) as events:
        yield f"retry: {_RETRY_MS}\n\n"
        chunks, held = await state.catch_up(events, sync_timeout)
        for _topic, payload in held:
            chunks += await state.handle(payload)
        for chunk in chunks:
            yield chunk
        while True:
            due = state.flush_due()
            if due is not None and due <= 0:
                for chunk in state.flush():
                    yield chunk
                continue
            try:
                _topic, payload = await asyncio.wait_for(
                    anext(events), keepalive if due is None else min(due, keepalive)
                )
            except TimeoutError:
                if due is None:
                    yield ": keep-alive\n\n"
                continue
            except StopAsyncIteration:
                for chunk in state.flush():
                    yield chunk
                return
            for chunk in await state.handle(payload):
                yield chunk


def event_stream_response(
    events: AsyncIterator[str], *, request: HttpRequest | None = None
) -> StreamingHttpResponse:
    """Wrap `relay(...)` in a `StreamingHttpResponse` with the headers SSE needs.

    Given the `request`, the stream is gzip-compressed when the browser accepts it: one gzip
    stream flushed after every event (so nothing waits in a buffer), in which the framing that
    every event repeats (event name, cursor, message id, JSON keys) costs a few bytes.
    """
    from django.http import StreamingHttpResponse

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body: AsyncIterator[str] | AsyncIterator[bytes] = events
    if request is not None:
        headers["Vary"] = "Accept-Encoding"
        if _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
            headers["Content-Encoding"] = "gzip"
            body = _gzip(events)
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=headers)


_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


async def _gzip(events: AsyncIterator[str]) -> AsyncIterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    try:
        async for chunk in events:
            yield compressor.compress(chunk.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    finally:
        # A client that goes away closes the relay at once, which ends its subscription.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
