"""`ScriptedLLM`: a pydantic-ai model that plays a script of turns (text deltas, tool calls).

`ToolCall`, `Thinking`, `ReportedUsage` and `Turn` are the script's vocabulary, shared with the
fake OpenAI server.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
)
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCall,
    DeltaToolCalls,
    FunctionModel,
)
from pydantic_ai.usage import RequestUsage

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.models import ModelRequestParameters, StreamedResponse
    from pydantic_ai.settings import ModelSettings

__all__ = [
    "ReportedUsage",
    "ScriptExhausted",
    "ScriptItem",
    "ScriptedLLM",
    "Thinking",
    "ToolCall",
    "Turn",
]


@dataclass(frozen=True)
class ToolCall:
    """A tool call in a script.

    Attributes:
        name: The tool to call.
        arguments: A dict, or a raw JSON string (which may be malformed, to test error paths).
        id: The call id; `call_<n>` (counting from 1 per model) when not given.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The arguments as the JSON text a provider would send."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Thinking:
    """A piece of the model's reasoning in a script (a `ThinkingPart` delta).

    Consecutive pieces make one thinking part, as a provider streams it; the fake OpenAI server
    sends them as `reasoning_content` deltas before the turn's text.
    """

    text: str


@dataclass(frozen=True)
class ReportedUsage:
    """What the provider reports a turn used, in a script (anywhere in the turn).

    Without one, a turn reports pydantic-ai's `FunctionModel` estimate (a few tokens per word).
    Token counts follow pydantic-ai's convention: cached tokens are part of `input_tokens`,
    reasoning tokens part of `output_tokens`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def request_usage(self) -> RequestUsage:
        """As pydantic-ai's `RequestUsage`."""
        return RequestUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_reasoning_tokens=self.reasoning_tokens,
        )


ScriptItem: TypeAlias = str | Thinking | ToolCall | ReportedUsage | BaseException
"""A text delta, a piece of reasoning, a tool call, the usage to report, or an exception raised at
that point (a provider failure)."""

_streaming: contextvars.ContextVar[StreamedResponse | None] = contextvars.ContextVar(
    "django_ai_chat_scripted_stream", default=None
)

Turn: TypeAlias = Sequence[ScriptItem]
"""One model response: what the model streams for one request."""


class ScriptExhausted(AssertionError):
    """The scripted model got a request its script has no turn for."""


class ScriptedLLM(FunctionModel):
    """A pydantic-ai model that plays a script: each model request consumes the next turn.

    Example:
        >>> llm = ScriptedLLM([["Let me ", "look."], [ToolCall("search", {"q": "x"})], ["Done."]])
        >>> thinker = ScriptedLLM([[Thinking("The user wants "), Thinking("a greeting."), "Hi!"]])

    Both streamed and non-streamed requests are served. Every request's messages are recorded in
    `requests`, the names of the tools offered in `tool_names`, and the usage each response
    reported (a turn's `ReportedUsage`, else pydantic-ai's estimate) in `usages`, for assertions.
    """

    __test__ = False

    def __init__(self, script: Iterable[Turn] = (), *, model_name: str = "scripted") -> None:
        """Create a model playing `script` (a list of turns, each a list of items)."""
        self.turns: deque[list[ScriptItem]] = deque(list(turn) for turn in script)
        self.requests: list[list[ModelMessage]] = []
        self.tool_names: list[list[str]] = []
        self.usages: list[RequestUsage] = []
        self._call_count = 0
        super().__init__(self._respond, stream_function=self._stream, model_name=model_name)

    def add_turns(self, *turns: Turn) -> None:
        """Append turns to the script."""
        self.turns.extend(list(turn) for turn in turns)

    def _next_turn(self, messages: list[ModelMessage], info: AgentInfo) -> list[ScriptItem]:
        self.requests.append(list(messages))
        self.tool_names.append([tool.name for tool in info.function_tools])
        if not self.turns:
            raise ScriptExhausted(
                f"ScriptedLLM {self.model_name!r} got model request #{len(self.requests)}, but its "
                "script has no turn left; add one (ScriptedLLM([...]) or .add_turns(...))."
            )
        return self.turns.popleft()

    def _call_id(self, call: ToolCall) -> str:
        self._call_count += 1
        return call.id or f"call_{self._call_count}"

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """One non-streamed response; its usage is recorded in `usages`."""
        response = await super().request(messages, model_settings, model_request_parameters)
        self.usages.append(response.usage)
        return response

    @contextlib.asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse, None]:
        """One streamed response; its usage is recorded in `usages` once it ends."""
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as response:
            token = _streaming.set(response)
            try:
                yield response
            finally:
                _streaming.reset(token)
                self.usages.append(response.usage)

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls | DeltaThinkingCalls]:
        turn = self._next_turn(messages, info)
        reported = next((item for item in turn if isinstance(item, ReportedUsage)), None)
        turn = [item for item in turn if not isinstance(item, ReportedUsage)]
        if not turn:
            # A provider's empty reply is a stream without content; FunctionModel insists on one
            # item, and an empty string is what such a stream amounts to.
            yield ""
        thought_at: int | None = None  # the part of a run of `Thinking` pieces
        for index, item in enumerate(turn):
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Thinking):
                thought_at = index if thought_at is None else thought_at
                yield {thought_at: DeltaThinkingPart(content=item.text)}
                continue
            thought_at = None
            if isinstance(item, ToolCall):
                yield {
                    index: DeltaToolCall(
                        name=item.name,
                        json_args=item.arguments_json(),
                        tool_call_id=self._call_id(item),
                    )
                }
            elif isinstance(item, str):
                yield item
        if reported is not None and (response := _streaming.get()) is not None:
            # As a provider's last chunk: its figures replace whatever was estimated.
            response._usage = reported.request_usage()

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = self._next_turn(messages, info)
        text = thinking = ""
        calls: list[ToolCallPart] = []
        usage = RequestUsage()
        for item in turn:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, ReportedUsage):
                usage = item.request_usage()
            elif isinstance(item, Thinking):
                thinking += item.text
            elif isinstance(item, ToolCall):
                calls.append(ToolCallPart(item.name, item.arguments_json(), self._call_id(item)))
            else:
                text += item
        parts: list[ModelResponsePart] = [ThinkingPart(thinking)] if thinking else []
        parts += [*([TextPart(text)] if text else []), *calls]
        return ModelResponse(parts=parts, usage=usage)
