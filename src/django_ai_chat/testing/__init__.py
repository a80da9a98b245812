"""Test doubles for the LLM provider, shipped so generated apps can test offline.

* `ScriptedLLM`: a pydantic-ai model playing a script of turns (text deltas and tool calls).
* `register_model` / `unregister_model`: name models for `"test:<name>"` model strings.
* `DemoModel`: the offline `"demo:"` model (a Markdown answer, streamed at a human pace).
* `FakeOpenAIServer`: an OpenAI-compatible chat-completions server over real HTTP + SSE; also
  `python -m django_ai_chat.testing --port 8900 --ttft 0.2 --tps 50 --tokens 100`
  (`FakeOpenAIApp` is its ASGI app, to serve or wrap yourself).
* `block_real_llm_requests()`: makes HTTP requests to non-loopback hosts fail (the pytest fixture
  lives in `django_ai_chat.pytest_plugin`).
* `make_user(name)`: a user of the project's user model, whatever its username and required
  fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from django.core.exceptions import FieldDoesNotExist
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.usage import RequestUsage

from django_ai_chat.dev.demo_model import DemoModel
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.testing._fake_openai import FakeOpenAIApp, FakeOpenAIServer, emit_schedule
from django_ai_chat.testing._llm_guard import RealLLMRequestBlocked, block_real_llm_requests

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
    from pydantic_ai.settings import ModelSettings

__all__ = [
    "DemoModel",
    "FakeOpenAIApp",
    "FakeOpenAIServer",
    "RealLLMRequestBlocked",
    "ReportedUsage",
    "ScriptExhausted",
    "ScriptedLLM",
    "ToolCall",
    "Turn",
    "block_real_llm_requests",
    "emit_schedule",
    "make_user",
    "register_model",
    "registered_model",
    "unregister_model",
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


ScriptItem: TypeAlias = str | ToolCall | ReportedUsage | BaseException
"""A text delta, a tool call, the usage to report, or an exception raised at that point (a
provider failure)."""

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
    ) -> AsyncIterator[str | DeltaToolCalls]:
        turn = self._next_turn(messages, info)
        reported = next((item for item in turn if isinstance(item, ReportedUsage)), None)
        turn = [item for item in turn if not isinstance(item, ReportedUsage)]
        if not turn:
            # A provider's empty reply is a stream without content; FunctionModel insists on one
            # item, and an empty string is what such a stream amounts to.
            yield ""
        for index, item in enumerate(turn):
            if isinstance(item, BaseException):
                raise item
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
        text = ""
        calls: list[ToolCallPart] = []
        usage = RequestUsage()
        for item in turn:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, ReportedUsage):
                usage = item.request_usage()
            elif isinstance(item, ToolCall):
                calls.append(ToolCallPart(item.name, item.arguments_json(), self._call_id(item)))
            else:
                text += item
        return ModelResponse(parts=[*([TextPart(text)] if text else []), *calls], usage=usage)


_registry: dict[str, Model] = {}
_M = TypeVar("_M", bound="Model")


def register_model(name: str, model: _M) -> _M:
    """Make `model` available as the model string `"test:<name>"`; returns `model`."""
    _registry[name] = model
    return model


def unregister_model(name: str) -> None:
    """Forget the model registered as `name` (no error if there is none)."""
    _registry.pop(name, None)


def registered_model(name: str) -> Model:
    """The model registered as `name`.

    Raises:
        ConfigurationError: nothing is registered under `name`.
    """
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(repr(n) for n in sorted(_registry)) or "none"
        raise ConfigurationError(
            f"No test model is registered as {name!r} (registered: {known}). Call "
            f"django_ai_chat.testing.register_model({name!r}, ScriptedLLM([...])) first, or use "
            "the 'scripted_llm' fixture of django_ai_chat.pytest_plugin."
        ) from None


def make_user(name: str, **extra: Any) -> Any:
    """Create a user of `AUTH_USER_MODEL` named after `name`, without a usable password.

    Fills what the model requires (`USERNAME_FIELD`, `REQUIRED_FIELDS`) and its email field:
    email fields get `<name>@example.com`, other text fields `name`; `extra` fields win (pass
    `password="…"` for a usable one). Uses the manager's `create_user` when it has one.

    Raises:
        TypeError: A required field is neither text nor email and `extra` does not give it.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    opts = user_model._meta
    names = [user_model.USERNAME_FIELD, *user_model.REQUIRED_FIELDS]
    email_field = getattr(user_model, "EMAIL_FIELD", None)
    if isinstance(email_field, str) and email_field not in names:
        with contextlib.suppress(FieldDoesNotExist):
            opts.get_field(email_field)
            names.append(email_field)
    fields: dict[str, Any] = {}
    for field_name in names:
        if field_name not in extra:
            fields[field_name] = _user_field_value(opts.get_field(field_name), name)
    fields.update(extra)
    fields.setdefault("password", None)
    manager = user_model._default_manager
    create_user = getattr(manager, "create_user", None)
    if callable(create_user):
        return create_user(**fields)
    password = fields.pop("password")
    user = user_model(**fields)
    user.set_password(password)
    user.save()
    return user


def _user_field_value(field: Any, name: str) -> str:
    from django.db import models

    if isinstance(field, models.EmailField):
        return f"{name}@example.com"
    if isinstance(field, models.CharField | models.TextField):
        max_length = getattr(field, "max_length", None)
        return name[:max_length] if max_length else name
    raise TypeError(
        f"make_user cannot make up a value for the user field {field.name!r} "
        f"({type(field).__name__}): pass it, e.g. make_user({name!r}, {field.name}=...)."
    )
