"""The SSE side of a live answer: `relay` sends one browser what it lacks, then live events.

A browser follows an answer through an SSE stream that subscribes first, asks the worker to
flush (`sync`), reads the rows, sends what the browser lacks beyond its cursor and then forwards
live deltas, de-duplicated by offset. A reload, a dropped connection or a restarted web server
therefore ends with exactly the model's text: no gap, no duplicate.

Longer than our usual modules: `_Relay` is one state machine (cursor, rows read, live events
de-duplicated by offset) whose steps only make sense together; the payloads, topics and HTTP
response live in their own modules beside it.

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
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

from django_ai_chat import pubsub
from django_ai_chat.streaming import protocol
from django_ai_chat.streaming.cursor import Cursor, StreamedMessage, uuid_str
from django_ai_chat.streaming.http import RETRY_MS, sse
from django_ai_chat.streaming.topics import control_topic

__all__ = ["KEEPALIVE_SECONDS", "SYNC_TIMEOUT_SECONDS", "relay"]

DELTA: Final = "delta"
THINKING: Final = "thinking"
"""The SSE event names of live text and live reasoning (same names as the pub/sub payloads)."""

_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

KEEPALIVE_SECONDS: Final = 15.0
"""Idle time after which `relay` sends an SSE comment, so proxies keep the connection open."""

SYNC_TIMEOUT_SECONDS: Final = 1.0
"""How long `relay` waits for the worker's `flushed` reply before reading the rows anyway."""


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
        coalesce: bool | float = False,
    ) -> None:
        self.after = cursor.after
        self.since = cursor.since
        # Incomplete messages the browser streams: id → characters it holds; `thought`: the
        # same for their reasoning (a message is in both or in neither).
        self.sent: dict[str, int] = {cursor.partial: cursor.end} if cursor.partial else {}
        self.thought: dict[str, int] = {cursor.partial: cursor.thinking} if cursor.partial else {}
        self.latest_partial = cursor.partial
        self.complete: set[str] = set()
        # Messages with a gap (deltas missed): their deltas wait here for the worker's flush.
        self.waiting: dict[str, list[dict[str, Any]]] = {}
        self.topic = messages_topic
        self._load_messages = load_messages
        self._load_message = load_message
        self._render_message = render_message
        self._render_conversation = render_conversation
        self.coalesce = bool(coalesce)
        # A live delta held while the events queued behind it are read:
        # (event name, id, offset, text).
        self.held: tuple[str, str, int, str] | None = None

    def cursor(self) -> str:
        partial = self.latest_partial if self.latest_partial in self.sent else None
        if partial is None:
            return str(Cursor(self.after))
        return str(
            Cursor(self.after, partial, self.sent[partial], thinking=self.thought.get(partial, 0))
        )

    def _forget(self, message_id: str) -> None:
        self.sent.pop(message_id, None)
        self.thought.pop(message_id, None)

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
        listed = {uuid_str(row.id) for row in rows}
        for message_id in [m for m in self.sent if m not in listed]:
            row = await self._load_message(message_id)
            if row is None:
                gone.append(message_id)
            else:
                rows.append(row)
        rows.sort(key=lambda row: uuid_str(row.id))
        incomplete = [uuid_str(row.id) for row in rows if not row.complete]
        if incomplete:
            pending = set(incomplete)
            for message_id in incomplete:
                await pubsub.apublish(control_topic(self.topic), protocol.sync(message_id))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while pending and (remaining := deadline - loop.time()) > 0:
                try:
                    topic, payload = await asyncio.wait_for(anext(events), remaining)
                except (TimeoutError, StopAsyncIteration):
                    break
                if payload.get("type") == protocol.FLUSHED:
                    pending.discard(str(payload.get("id")))
                held.append((topic, payload))
            for message_id in pending:
                # No worker writes it any more (paused for an approval, or its worker died):
                # its state may have changed without a delta, so the browser gets it whole.
                self._forget(message_id)
            fresh = {mid: await self._load_message(mid) for mid in incomplete}
            reread: list[StreamedMessage] = []
            for row in rows:
                current = row if row.complete else fresh.get(uuid_str(row.id))
                if current is not None:
                    reread.append(current)
            rows = reread
        chunks: list[str] = []
        if self.since is not None:
            chunks.append(await self._present(self.since))
        for message_id in gone:
            self._forget(message_id)
            chunks.append(sse("removed", json.dumps({"id": message_id})))
        for row in rows:
            chunks += await self.send_row(row)
        return chunks, held

    async def _present(self, since: str) -> str:
        # Only within what `load_messages` returns: it may bound the rows to the newest N.
        ids = sorted(uuid_str(row.id) for row in await self._load_messages(None))
        window = max(since, ids[0]) if ids else since
        kept = [message_id for message_id in ids if message_id >= window]
        # Rows before `since` too: one that joined the branch shown while the page was away (a
        # switch of version) is older than what the page shows, and only the page can tell.
        older = [message_id for message_id in ids if message_id < window]
        return sse("present", json.dumps({"since": window, "ids": kept, "older": older}))

    async def send_row(self, row: StreamedMessage) -> list[str]:
        """Send one row: a `delta` with the missing text when the browser streams it, else HTML."""
        held = self.flush()
        if held:
            return held + await self.send_row(row)
        message_id = uuid_str(row.id)
        if self.after is None or message_id > self.after:
            self.after = message_id
        have = self.sent.get(message_id)
        thinking = _thinking_of(row)
        thought = self.thought.get(message_id, 0)
        if (
            not row.complete
            and have is not None
            and have <= len(row.text)
            and thought <= len(thinking)
        ):
            self.latest_partial = message_id
            chunks: list[str] = []
            if thought < len(thinking):
                self.thought[message_id] = len(thinking)
                chunks.append(self._delta(message_id, thought, thinking[thought:], THINKING))
            if have < len(row.text):
                self.sent[message_id] = len(row.text)
                chunks.append(self._delta(message_id, have, row.text[have:]))
            return chunks
        if not row.complete and have is not None:
            # The browser holds more than the row (a flush is still on its way): keep going.
            return []
        if row.complete:
            self._forget(message_id)
            self.complete.add(message_id)
        else:
            self.sent[message_id] = len(row.text)
            self.thought[message_id] = len(thinking)
            self.latest_partial = message_id
        html = await self._render_message(row)
        return [sse("message", html, self.cursor())]

    async def handle(self, payload: dict[str, Any]) -> list[str]:
        """Turn one pub/sub payload into SSE chunks."""
        kind = payload.get("type")
        if kind not in (protocol.DELTA, protocol.THINKING, protocol.FLUSHED):
            # Whatever else goes out must not overtake a held delta.
            held = self.flush()
            if held:
                return held + await self.handle(payload)
        if kind == protocol.CONVERSATION:
            if self._render_conversation is None:
                return []
            data = await self._render_conversation(payload)
            return [] if data is None else [sse("conversation", data)]
        if kind == protocol.RESYNC:
            return await self._resync()
        try:
            message_id = uuid_str(payload.get("id"))
        except ValueError:
            return []
        if kind == protocol.MESSAGE:
            return await self._reread(message_id)
        if kind in (protocol.DELTA, protocol.THINKING):
            return await self._on_delta(message_id, payload)
        if kind == protocol.FLUSHED and message_id in self.waiting:
            deltas = self.waiting.pop(message_id)
            chunks = await self._reread(message_id)
            for delta in deltas:
                chunks += await self._on_delta(message_id, delta)
            return chunks
        return []

    async def _reread(self, message_id: str) -> list[str]:
        row = await self._load_message(message_id)
        if row is None:
            self._forget(message_id)
            self.waiting.pop(message_id, None)
            return [*self.flush(), sse("removed", json.dumps({"id": message_id}))]
        self._forget(message_id)  # a state change: the browser gets the whole message
        return await self.send_row(row)

    async def _on_delta(self, message_id: str, payload: dict[str, Any]) -> list[str]:
        if message_id in self.complete:
            return []
        if message_id in self.waiting:
            self.waiting[message_id].append(payload)
            return []
        offset, text = int(payload.get("offset", 0)), str(payload.get("text", ""))
        # Reasoning and text count their offsets apart: each against what the browser holds
        # of it, the one path for both.
        event = THINKING if payload.get("type") == protocol.THINKING else DELTA
        held = self.thought if event == THINKING else self.sent
        chunks: list[str] = []
        if message_id not in self.sent:
            # A message this connection has not seen yet: read it first.
            chunks += await self._reread(message_id)
            if message_id not in self.sent:
                return chunks
        have = held.get(message_id, 0)
        end = offset + len(text)
        if end <= have:
            return chunks
        if offset > have:
            row = await self._load_message(message_id)
            stored = "" if row is None else (_thinking_of(row) if event == THINKING else row.text)
            if row is not None and not row.complete and len(stored) >= offset:
                chunks += await self.send_row(row)
                have = held.get(message_id, have)
            if offset > have:
                # Deltas were missed and the row lacks them too: ask for a flush, hold deltas.
                self.waiting[message_id] = [payload]
                if self.topic is not None:
                    await pubsub.apublish(control_topic(self.topic), protocol.sync(message_id))
                return chunks
            if end <= have:
                return chunks
        text = text[have - offset :]
        held[message_id] = end
        self.latest_partial = message_id
        return [*chunks, *self._hold(message_id, have, text, event)]

    def _hold(self, message_id: str, offset: int, text: str, event: str = "delta") -> list[str]:
        """Hold a live delta to merge it with the ones of its message queued right behind it.

        Only what is already queued: `relay` reads every event waiting in the subscription
        before it sends, then `flush`es, so nothing waits for a window or for the next token.
        """
        if not self.coalesce:
            return [self._delta(message_id, offset, text, event)]
        held = self.held
        if (
            held is not None
            and held[:2] == (event, message_id)
            and held[2] + len(held[3]) == offset
        ):
            self.held = (event, message_id, held[2], held[3] + text)
            return []
        chunks = self.flush()
        self.held = (event, message_id, offset, text)
        return chunks

    def flush(self) -> list[str]:
        """The held delta as an SSE chunk (nothing when none is held)."""
        if self.held is None:
            return []
        event, message_id, offset, text = self.held
        self.held = None
        return [self._delta(message_id, offset, text, event)]

    async def _resync(self) -> list[str]:
        # Messages may have been lost: every incomplete message is re-read in full.
        chunks: list[str] = []
        self.waiting.clear()
        rows = await self._load_messages(self.after)
        for row in rows:
            self._forget(uuid_str(row.id))
            chunks += await self.send_row(row)
        return chunks

    def _delta(self, message_id: str, offset: int, text: str, event: str = "delta") -> str:
        data = _compact_json({"id": message_id, "offset": offset, "text": text})
        # Compact JSON holds no raw line break: one `data:` line, no splitting (the hot path).
        return f"event: {event}\nid: {self.cursor()}\ndata: {data}\n\n"


def _thinking_of(row: StreamedMessage) -> str:
    # Rows of apps generated before reasoning existed have no `thinking` until they migrate.
    return str(getattr(row, "thinking", "") or "")


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
    coalesce: bool | float = False,
) -> AsyncIterator[str]:
    """Server-sent events for one browser: catch-up from the database, then live events.

    Order matters and is what makes resuming exact: subscribe first; publish `sync` for each
    incomplete message and wait up to `sync_timeout` for the worker's `flushed`; read the rows;
    send what the browser lacks beyond `cursor` (an incomplete message no worker flushed, e.g.
    one paused for a tool approval, goes out whole: it may have changed without a delta); then
    forward live events, deltas de-duplicated
    by offset (a delta ending at or before what was sent is dropped, an overlapping one is
    trimmed, a gap triggers a flush and a re-read). Every `message`/`delta` event carries the
    cursor as its SSE `id:`, which EventSource sends back as `Last-Event-ID`.

    SSE events: `message` (`data`: HTML from `render_message`), `delta` (`data`: JSON
    `{"id", "offset", "text"}`), `thinking` (the same for the message's reasoning, offsets
    counted in its `thinking`; the cursor's `thinking` says how much the browser holds),
    `removed` (`data`: JSON `{"id"}`, the row is gone),
    `present` (only when the cursor has `since`, before the catch-up: JSON `{"since", "ids",
    "older"}`, the ids of the rows that exist from `since` on, the browser dropping the others
    it shows; `older`: the ids before `since`, so that it can tell when one it lacks joined the
    branch),
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
        coalesce: Merge the deltas of a message that are already queued behind the one being
            sent into one event (falsy: one event per delta). Nothing is held back to wait for
            more: while the browser keeps up, every delta goes out on its own at once; while
            a write is in flight (a slow client, a busy process), what queues behind it goes
            out as one event. Models stream a few characters per token, so per-token events
            cost several times the text in SSE framing (gzip, see `event_stream_response`,
            takes most of it away). A number is read as a flag (apps generated before 0.2 set
            `0.05`, then a window in seconds: a token could wait for it).


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
        yield f"retry: {RETRY_MS}\n\n"
        chunks, held = await state.catch_up(events, sync_timeout)
        for _topic, payload in held:
            chunks += await state.handle(payload)
        chunks += state.flush()
        for chunk in chunks:
            yield chunk
        while True:
            try:
                _topic, payload = await asyncio.wait_for(anext(events), keepalive)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            except StopAsyncIteration:
                return
            chunks = await state.handle(payload)
            if state.coalesce:
                # What arrived while the last chunks were being written: one event per message.
                for _topic, queued in events.drain():
                    chunks += await state.handle(queued)
                chunks += state.flush()
            for chunk in chunks:
                yield chunk
