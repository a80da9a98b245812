"""Our answers in the AI SDK's UI message stream protocol: what `useChat` and its kin speak.

The AI SDK (`ai`, `@ai-sdk/react`'s `useChat`, AI Elements, assistant-ui) reads an answer as
server-sent events of JSON "chunks" (header `x-vercel-ai-ui-message-stream: v1`): `start`,
`reasoning-start` / `reasoning-delta` / `reasoning-end` (the model's thinking, before the text
it precedes), `text-start` / `text-delta` / `text-end`, `tool-input-available`,
`tool-output-available` / `tool-output-error`, `tool-approval-request` / `tool-output-denied`
(a call that waits for the user's approval, see `approvals`), `error`, `finish`, then
`data: [DONE]`. The
chunk types are pydantic-ai's (`pydantic_ai.ui.vercel_ai.response_types`), encoded for AI SDK 6
(also 7's wire).

This module turns the same durable answer the page streams (one database row that grows, deltas
by offset on the conversation's pub/sub topic, see `streaming`) into those chunks:
`AnswerChunks` keeps what one client has been sent of one answer, `follow_answer` streams an
answer from the row plus live deltas (a reconnect replays it from its start, which is what the
AI SDK's `DefaultChatTransport` expects of a resumed stream: `resumeStreamIsReplay`), and
`ui_message` gives a stored message as a `UIMessage` (for loading a conversation).

A tool call sits in the text where the model made it: the runtime stores each call with the
`offset` of the text at that moment (older rows without one get their calls first). An answer
paused for approvals ends its stream with a `tool-approval-request` per waiting call (its
`approvalId` is the stored request's id) and `finish` (`tool-calls`); the client's
`addToolApprovalResponse` sends the decisions back with the next turn (`chat_api`), and the
continuation streams from where the pause left the answer (`AnswerChunks.resumed`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from django.utils.translation import gettext
from pydantic_ai.ui.vercel_ai import request_types as ui
from pydantic_ai.ui.vercel_ai import response_types as chunks

from django_ai_chat import pubsub
from django_ai_chat.approvals import AbstractToolApproval
from django_ai_chat.streaming import (
    KEEPALIVE_SECONDS,
    SYNC_TIMEOUT_SECONDS,
    StreamedMessage,
    control_topic,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    _Q = TypeVar("_Q", bound=QuerySet[Any])


__all__ = [
    "DONE",
    "HEADERS",
    "KEEPALIVE",
    "SDK_VERSION",
    "AnswerChunks",
    "AnswerRow",
    "encode",
    "follow_answer",
    "message_metadata",
    "ui_message",
    "with_approvals",
]

SDK_VERSION: Final = 6
"""The AI SDK major version the chunks are encoded for (6's wire is also 7's)."""

HEADERS: Final[Mapping[str, str]] = {"x-vercel-ai-ui-message-stream": "v1"}
"""The response header that marks a UI message stream."""

DONE: Final = "data: [DONE]\n\n"
"""The last event of every stream."""

_APPROVALS: Final = "approvals"  # the related name the approval model's `message` must use

KEEPALIVE: Final = ": keep-alive\n\n"
"""An SSE comment: proxies keep a quiet stream open, clients ignore it."""


class AnswerRow(StreamedMessage, Protocol):
    """What the stream needs of a message row: the relay's `StreamedMessage`, and more."""

    @property
    def stopped(self) -> bool:
        """The person stopped it."""

    @property
    def error(self) -> str:
        """The user-facing error text (`""`: none)."""

    @property
    def tool_calls(self) -> Any:
        """Stored tool calls (a list of dicts with `id`, `name`, `arguments`, `offset`)."""

    @property
    def tool_results(self) -> Any:
        """Stored tool results (dicts with `tool_call_id`, `content`, `is_error`)."""


def encode(chunk: chunks.BaseChunk) -> str:
    """One chunk as an SSE event (`data: <json>`)."""
    return f"data: {chunk.encode(SDK_VERSION)}\n\n"


def message_metadata(row: Any) -> dict[str, Any]:
    """The `metadata` of a message's `UIMessage`: when, and how an answer ended.

    `createdAt` (ISO 8601) for every message; for answers also `complete`, `stopped` and
    `error` (the text shown under a failed answer, `""` when none).
    """
    metadata: dict[str, Any] = {}
    inserted_at = getattr(row, "inserted_at", None)
    if inserted_at is not None:
        metadata["createdAt"] = inserted_at.isoformat()
    if _is_answer(row):
        metadata |= {"complete": bool(row.complete), "stopped": bool(row.stopped)}
        metadata["error"] = str(row.error or "")
    return metadata


def ui_message(row: Any) -> dict[str, Any]:
    """A stored message as the AI SDK's `UIMessage` (JSON-ready dict, camelCase keys).

    A user message is one text part; an answer is its reasoning (a `reasoning` part, when it
    has any), then its text cut at its tool calls, each call a `tool-<name>` part with its input
    and output (or error).
    """
    message_id = str(row.id)
    if not _is_answer(row):
        parts: list[ui.UIMessagePart] = [ui.TextUIPart(text=row.text)]
        return _dump(ui.UIMessage(id=message_id, role="user", parts=parts, metadata=None), row)
    state = AnswerChunks(message_id)
    return _dump(
        ui.UIMessage(id=message_id, role="assistant", parts=_fold(state.row(row)), metadata=None),
        row,
    )


@dataclass
class AnswerChunks:
    """What one client has been sent of one answer; turns row states and deltas into chunks.

    Attributes:
        message_id: The answer's id (the `UIMessage` id the client ends up with).
        sent: Characters of the answer's text sent so far.
        thought: Characters of its reasoning (`thinking`) sent so far.
        done: `finish` went out: nothing more is sent.
    """

    message_id: str
    sent: int = 0
    thought: int = 0
    done: bool = False
    _text_part: str | None = None
    _reasoning_part: str | None = None
    _parts: int = 0
    _inputs: set[str] = field(default_factory=set)
    _outputs: set[str] = field(default_factory=set)

    def start(self, row: AnswerRow | None = None) -> list[chunks.BaseChunk]:
        """The `start` chunk: the answer's id, and its metadata when the row is known."""
        metadata = message_metadata(row) if row is not None else None
        return [chunks.StartChunk(message_id=self.message_id, message_metadata=metadata)]

    def row(self, row: AnswerRow) -> list[chunks.BaseChunk]:
        """Everything the row holds beyond what was sent; `finish` once it is complete.

        An answer paused for approvals ends with a `tool-approval-request` per waiting call and
        `finish` (`tool-calls`); a denied call's part ends `tool-output-denied`.
        """
        if self.done:
            return []
        out: list[chunks.BaseChunk] = self._reasoning(_thinking_of(row)[self.thought :])
        text = row.text
        for call in _calls(row):
            if call.id in self._inputs:
                continue
            # Never before what was sent: text cannot be taken back from the client.
            at = self.sent if call.offset is None else max(self.sent, min(call.offset, len(text)))
            out += self._text(text[self.sent : at])
            out += self._end_text() + self._end_reasoning()
            out.append(
                chunks.ToolInputAvailableChunk(
                    tool_call_id=call.id, tool_name=call.name, input=call.arguments
                )
            )
            self._inputs.add(call.id)
        approvals = _approvals(row)
        denied = {a.call_id for a in approvals if a.status == AbstractToolApproval.Status.DENIED}
        for result in _results(row):
            if result.id in self._outputs or result.id not in self._inputs:
                continue
            self._outputs.add(result.id)
            if result.id in denied:
                out.append(chunks.ToolOutputDeniedChunk(tool_call_id=result.id))
            elif result.is_error:
                out.append(
                    chunks.ToolOutputErrorChunk(
                        tool_call_id=result.id, error_text=_as_text(result.content)
                    )
                )
            else:
                out.append(
                    chunks.ToolOutputAvailableChunk(tool_call_id=result.id, output=result.content)
                )
        out += self._text(text[self.sent :])
        if row.complete:
            # Denied with no result: stopped, or superseded by a new message.
            for call_id in sorted(denied & self._inputs - self._outputs):
                self._outputs.add(call_id)
                out.append(chunks.ToolOutputDeniedChunk(tool_call_id=call_id))
            out += self._end_reasoning() + self._end_text()
            if row.error:
                # Stored as written; translated for the reader (see Responder.error_text).
                out.append(chunks.ErrorChunk(error_text=gettext(row.error)))
            reason: chunks.FinishReason = "error" if row.error else "stop"
            out.append(
                chunks.FinishChunk(finish_reason=reason, message_metadata=message_metadata(row))
            )
            self.done = True
        elif waiting := [a for a in approvals if a.is_pending]:
            out += self._end_reasoning() + self._end_text() + self._requests(waiting)
            # Nothing runs until the person decides: this stream ends here.
            out.append(
                chunks.FinishChunk(
                    finish_reason="tool-calls", message_metadata=message_metadata(row)
                )
            )
            self.done = True
        return out

    def resumed(self, row: AnswerRow) -> AnswerChunks:
        """This state once its client holds `row` as the pause left it (the calls decided).

        For the stream of an answer that goes on after its approvals: the client continues the
        assistant message it has, so what it holds is not sent again.
        """
        self.row(row)
        self._end_reasoning()
        self._end_text()
        return self

    def _requests(self, waiting: list[AbstractToolApproval]) -> list[chunks.BaseChunk]:
        out: list[chunks.BaseChunk] = []
        for approval in waiting:
            if approval.call_id not in self._inputs:  # stored by an older runtime without it
                self._inputs.add(approval.call_id)
                out.append(
                    chunks.ToolInputAvailableChunk(
                        tool_call_id=approval.call_id,
                        tool_name=approval.tool_name,
                        input=approval.arguments,
                    )
                )
            out.append(
                chunks.ToolApprovalRequestChunk(
                    approval_id=str(approval.pk), tool_call_id=approval.call_id
                )
            )
        return out

    def delta(self, offset: int, text: str) -> list[chunks.BaseChunk] | None:
        """A live delta as chunks (`[]`: already sent; `None`: a gap, re-read the row)."""
        if self.done:
            return []
        end = offset + len(text)
        if end <= self.sent:
            return []
        if offset > self.sent:
            return None
        return self._text(text[self.sent - offset :])

    def thinking_delta(self, offset: int, text: str) -> list[chunks.BaseChunk] | None:
        """A live `thinking` delta as reasoning chunks (`[]`: sent; `None`: a gap, re-read)."""
        if self.done:
            return []
        end = offset + len(text)
        if end <= self.thought:
            return []
        if offset > self.thought:
            return None
        return self._reasoning(text[self.thought - offset :])

    def _reasoning(self, text: str) -> list[chunks.BaseChunk]:
        if not text:
            return []
        out: list[chunks.BaseChunk] = self._end_text()  # a new stretch of thought: a new part
        if self._reasoning_part is None:
            self._parts += 1
            self._reasoning_part = f"{self.message_id}:{self._parts}"
            out.append(chunks.ReasoningStartChunk(id=self._reasoning_part))
        out.append(chunks.ReasoningDeltaChunk(id=self._reasoning_part, delta=text))
        self.thought += len(text)
        return out

    def _end_reasoning(self) -> list[chunks.BaseChunk]:
        if self._reasoning_part is None:
            return []
        part, self._reasoning_part = self._reasoning_part, None
        return [chunks.ReasoningEndChunk(id=part)]

    def _text(self, text: str) -> list[chunks.BaseChunk]:
        if not text:
            return []
        out: list[chunks.BaseChunk] = self._end_reasoning()  # the answer starts: thought ends
        if self._text_part is None:
            self._parts += 1
            self._text_part = f"{self.message_id}:{self._parts}"
            out.append(chunks.TextStartChunk(id=self._text_part))
        out.append(chunks.TextDeltaChunk(id=self._text_part, delta=text))
        self.sent += len(text)
        return out

    def _end_text(self) -> list[chunks.BaseChunk]:
        if self._text_part is None:
            return []
        part, self._text_part = self._text_part, None
        return [chunks.TextEndChunk(id=part)]


async def follow_answer(
    message_id: str,
    *,
    topic: str,
    events: pubsub.Subscription,
    load: Callable[[], Awaitable[AnswerRow | None]],
    keepalive: float = KEEPALIVE_SECONDS,
    sync_timeout: float = SYNC_TIMEOUT_SECONDS,
    state: AnswerChunks | None = None,
) -> AsyncIterator[str]:
    """Stream one answer from its start: the row, then live deltas, until it completes.

    The caller subscribed to `topic` (`events`) before reading anything, so nothing published
    after its reads is missed. As the page's relay does: ask the worker to flush (`sync`), wait
    up to `sync_timeout` for `flushed`, read the row, send it, then forward live deltas
    de-duplicated by offset (a gap is repaired from the row). Ends with `finish` and `[DONE]`
    when the answer completes, pauses for approvals, or when its row is gone (removed by a
    regenerate).

    Args:
        message_id: The answer's id.
        topic: `messages_topic(conversation_id)`.
        events: The open subscription to `topic`.
        load: Reads the answer's row (`None`: gone). Runs between waits, never across one.
        keepalive: Seconds of silence before an SSE comment keeps proxies from closing.
        sync_timeout: Seconds to wait for the worker's flush when catching up.
        state: What the client holds already (`AnswerChunks.resumed`: an answer going on after
            its approvals); by default nothing, so the answer is sent from its start.

    Yields:
        SSE events, each complete.
    """
    state = state or AnswerChunks(message_id)
    row = await load()
    if row is None:
        yield encode(chunks.StartChunk(message_id=message_id))
        yield encode(chunks.FinishChunk(finish_reason="other"))
        yield DONE
        return
    held: list[dict[str, Any]] = []
    if not row.complete:
        await pubsub.apublish(control_topic(topic), {"type": "sync", "id": message_id})
        held = await _await_flush(events, message_id, sync_timeout)
        row = await load() or row
    out = state.start(row) + state.row(row)
    waiting = False
    for payload in held:
        more, waiting = await _handle(state, payload, load, waiting, topic)
        out += more
    for chunk in out:
        yield encode(chunk)
    while not state.done:
        try:
            _topic, payload = await asyncio.wait_for(anext(events), keepalive)
        except TimeoutError:
            yield KEEPALIVE
            continue
        except StopAsyncIteration:
            return
        more, waiting = await _handle(state, payload, load, waiting, topic)
        for chunk in more:
            yield encode(chunk)
    yield DONE


async def _handle(
    state: AnswerChunks,
    payload: Mapping[str, Any],
    load: Callable[[], Awaitable[AnswerRow | None]],
    waiting: bool,
    topic: str,
) -> tuple[list[chunks.BaseChunk], bool]:
    """One pub/sub payload → chunks, and whether deltas now wait for a flush (a gap)."""
    kind = payload.get("type")
    if kind == pubsub.RESYNC_TYPE:
        return await _reread(state, load), False
    if str(payload.get("id")) != state.message_id:
        return [], waiting
    if kind == "message" or (kind == "flushed" and waiting):
        return await _reread(state, load), False
    if kind in ("delta", "thinking") and not waiting:
        offset, text = int(payload.get("offset", 0)), str(payload.get("text", ""))
        apply = state.thinking_delta if kind == "thinking" else state.delta
        out = apply(offset, text)
        if out is not None:
            return out, False
        # Deltas were lost: the row may hold them already, else the worker flushes it.
        row = await load()
        if row is None:
            return _gone(state), False
        out = state.row(row)
        retry = apply(offset, text)
        if retry is not None:
            return out + retry, False
        await pubsub.apublish(control_topic(topic), {"type": "sync", "id": state.message_id})
        return out, True
    return [], waiting


async def _reread(
    state: AnswerChunks, load: Callable[[], Awaitable[AnswerRow | None]]
) -> list[chunks.BaseChunk]:
    row = await load()
    return _gone(state) if row is None else state.row(row)


def _gone(state: AnswerChunks) -> list[chunks.BaseChunk]:
    if state.done:
        return []
    state.done = True
    ended = [*state._end_reasoning(), *state._end_text()]
    return [*ended, chunks.FinishChunk(finish_reason="other")]


async def _await_flush(
    events: pubsub.Subscription, message_id: str, timeout: float
) -> list[dict[str, Any]]:
    """Wait for the worker's `flushed` of `message_id`; returns the payloads received meanwhile."""
    held: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        try:
            _topic, payload = await asyncio.wait_for(anext(events), remaining)
        except (TimeoutError, StopAsyncIteration):
            break
        if payload.get("type") == "flushed" and str(payload.get("id")) == message_id:
            break
        held.append(payload)
    return held


# -- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    id: str
    name: str
    arguments: Any
    offset: int | None


@dataclass(frozen=True)
class _Result:
    id: str
    content: Any
    is_error: bool


def with_approvals(messages: _Q) -> _Q:
    """`messages` with their tool approvals prefetched, when the model has them."""
    if hasattr(messages.model, _APPROVALS):
        return messages.prefetch_related(_APPROVALS)
    return messages


def _approvals(row: Any) -> list[AbstractToolApproval]:
    # An app generated before tool approval has no `approvals`. Streams read them prefetched
    # (`with_approvals`): no query runs here in an event loop.
    related = getattr(row, _APPROVALS, None)
    return list(related.all()) if related is not None else []


def _thinking_of(row: Any) -> str:
    # Rows of apps generated before reasoning existed have no `thinking` until they migrate.
    return str(getattr(row, "thinking", "") or "")


def _is_answer(row: Any) -> bool:
    return str(getattr(row, "source", "")) == "agent"


def _entries(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    entries = []
    for entry in value:
        if isinstance(entry, str):
            try:
                entry = json.loads(entry)
            except ValueError:
                continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _calls(row: AnswerRow) -> list[_Call]:
    calls = []
    for entry in _entries(row.tool_calls):
        function = entry["function"] if isinstance(entry.get("function"), dict) else {}
        name = entry.get("name") or function.get("name")
        call_id = entry.get("id") or entry.get("call_id")
        if not name or not call_id:
            continue
        arguments = entry.get("arguments", function.get("arguments", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {"raw": arguments}
        offset = entry.get("offset")
        calls.append(
            _Call(str(call_id), str(name), arguments, offset if isinstance(offset, int) else None)
        )
    # Stored in the order they were made; an offset-less (older) call goes before the text.
    return sorted(calls, key=lambda call: call.offset or 0)


def _results(row: AnswerRow) -> list[_Result]:
    results = []
    for entry in _entries(row.tool_results):
        call_id = entry.get("tool_call_id") or entry.get("call_id") or entry.get("id")
        if call_id:
            results.append(
                _Result(str(call_id), entry.get("content"), bool(entry.get("is_error", False)))
            )
    return results


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _fold(stream: list[chunks.BaseChunk]) -> list[ui.UIMessagePart]:
    """The parts a client builds from `stream` (for a stored message, sent whole)."""
    parts: list[ui.UIMessagePart] = []
    texts: dict[str, ui.TextUIPart] = {}
    thoughts: dict[str, ui.ReasoningUIPart] = {}
    tools: dict[str, int] = {}
    names: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    for chunk in stream:
        if isinstance(chunk, chunks.TextStartChunk):
            texts[chunk.id] = ui.TextUIPart(text="", state="done")
            parts.append(texts[chunk.id])
        elif isinstance(chunk, chunks.TextDeltaChunk):
            texts[chunk.id].text += chunk.delta
        elif isinstance(chunk, chunks.ReasoningStartChunk):
            thoughts[chunk.id] = ui.ReasoningUIPart(text="", state="done")
            parts.append(thoughts[chunk.id])
        elif isinstance(chunk, chunks.ReasoningDeltaChunk):
            thoughts[chunk.id].text += chunk.delta
        elif isinstance(chunk, chunks.ToolInputAvailableChunk):
            names[chunk.tool_call_id] = chunk.tool_name
            inputs[chunk.tool_call_id] = chunk.input
            tools[chunk.tool_call_id] = len(parts)
            parts.append(
                ui.ToolInputAvailablePart(
                    type=f"tool-{chunk.tool_name}",
                    tool_call_id=chunk.tool_call_id,
                    input=chunk.input,
                )
            )
        elif isinstance(chunk, chunks.ToolOutputAvailableChunk):
            call_id = chunk.tool_call_id
            parts[tools[call_id]] = ui.ToolOutputAvailablePart(
                type=f"tool-{names[call_id]}",
                tool_call_id=call_id,
                input=inputs[call_id],
                output=chunk.output,
            )
        elif isinstance(chunk, chunks.ToolOutputErrorChunk):
            call_id = chunk.tool_call_id
            parts[tools[call_id]] = ui.ToolOutputErrorPart(
                type=f"tool-{names[call_id]}",
                tool_call_id=call_id,
                input=inputs[call_id],
                error_text=chunk.error_text,
            )
        elif isinstance(chunk, chunks.ToolApprovalRequestChunk):
            call_id = chunk.tool_call_id
            parts[tools[call_id]] = ui.ToolApprovalRequestedPart(
                type=f"tool-{names[call_id]}",
                tool_call_id=call_id,
                input=inputs[call_id],
                approval=ui.ToolApprovalRequested(id=chunk.approval_id),
            )
        elif isinstance(chunk, chunks.ToolOutputDeniedChunk):
            call_id = chunk.tool_call_id
            parts[tools[call_id]] = ui.ToolOutputDeniedPart(
                type=f"tool-{names[call_id]}", tool_call_id=call_id, input=inputs[call_id]
            )
    return parts


def _dump(message: ui.UIMessage, row: Any) -> dict[str, Any]:
    data: dict[str, Any] = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["metadata"] = message_metadata(row)
    return data
