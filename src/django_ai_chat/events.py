"""Typed events yielded by the streaming tool loop (`django_ai_chat.loop`).

Each event is a frozen dataclass with a `kind` discriminator, so consumers can `match` on the
class or switch on `event.kind` after a JSON round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ApprovalRequestEvent",
    "DoneEvent",
    "ErrorEvent",
    "ErrorReason",
    "Event",
    "PausedRun",
    "TextDeltaEvent",
    "ThinkingDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "Usage",
]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token usage summed over every model request of one run, as the provider reported it.

    Attributes:
        input_tokens: Prompt tokens, cached ones included.
        output_tokens: Completion tokens, reasoning ones included.
        requests: Model requests made.
        cache_read_tokens: Input tokens read from the provider's prompt cache.
        cache_write_tokens: Input tokens written to it.
        reasoning_tokens: Output tokens spent thinking.
        cost: US dollars, from `AI_CHAT_PRICES` or the `genai-prices` table; `None` when a
            request's model is in neither (unknown, not free).
        model_name: The model that answered, as the provider named it (the last request's).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    model_name: str = ""


@dataclass(frozen=True, kw_only=True)
class TextDeltaEvent:
    """A piece of answer text, as the provider streamed it."""

    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, kw_only=True)
class ThinkingDeltaEvent:
    """A piece of the model's reasoning (a `ThinkingPart`), as the provider streamed it.

    Providers that think visibly (Anthropic's extended thinking, DeepSeek's and other
    OpenAI-compatible servers' `reasoning_content`, Gemini's thoughts) stream it before the
    answer's text; summarised or encrypted reasoning that carries no text yields nothing.
    """

    text: str
    kind: Literal["thinking_delta"] = "thinking_delta"


@dataclass(frozen=True, kw_only=True)
class ToolCallEvent:
    """The model asked for a tool; emitted before the tool runs."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, kw_only=True)
class ToolResultEvent:
    """What a tool returned (or the error it raised), as sent back to the model."""

    call_id: str
    name: str
    content: Any
    """JSON-serialisable result; for errors, the error text."""
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, kw_only=True)
class ApprovalRequestEvent:
    """A tool call waits for the user's approval: the run pauses after this round.

    Emitted after the call's `ToolCallEvent`, before the `DoneEvent` whose `paused` holds what
    a later run needs to go on (`loop.astream(resume=...)`).
    """

    call_id: str
    name: str
    arguments: dict[str, Any]
    description: list[tuple[str, str]]
    """The arguments as `(label, value)` pairs a person reads (`Tool.describe_arguments`)."""
    kind: Literal["approval_request"] = "approval_request"


@dataclass(frozen=True, kw_only=True)
class PausedRun:
    """A run that stopped for approvals: what `loop.astream(resume=...)` continues from.

    Attributes:
        messages: The run's own model messages after the user's prompt (pydantic-ai's
            `ModelMessagesTypeAdapter` JSON form): the responses and tool results so far,
            ending with the response whose calls wait. JSON-serialisable, to be stored.
        calls: The ids of the calls that wait for a decision.
    """

    messages: list[Any]
    calls: tuple[str, ...]


ErrorReason = Literal["provider_error", "max_rounds", "cancelled", "configuration", "timeout"]


@dataclass(frozen=True, kw_only=True)
class ErrorEvent:
    """The run stopped early; a `DoneEvent` still follows."""

    reason: ErrorReason
    message: str
    """Developer-facing detail; never shown to end users verbatim."""
    kind: Literal["error"] = "error"


@dataclass(frozen=True, kw_only=True)
class DoneEvent:
    """Always the last event of a run, also after an `ErrorEvent`."""

    text: str
    """All answer text of the run, concatenated."""
    usage: Usage = field(default_factory=Usage)
    rounds: int = 0
    paused: PausedRun | None = None
    """Set when the run stopped because tool calls wait for approval (`ApprovalRequestEvent`)."""
    kind: Literal["done"] = "done"


Event = (
    TextDeltaEvent
    | ThinkingDeltaEvent
    | ToolCallEvent
    | ToolResultEvent
    | ApprovalRequestEvent
    | ErrorEvent
    | DoneEvent
)
"""Any event of a loop run. The sequence always ends with exactly one `DoneEvent`."""
