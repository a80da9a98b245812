"""The streaming tool loop (AshAi.ToolLoop.stream): history in, typed events out.

Built on pydantic-ai's `Agent.iter()`: each model request is streamed node by node, so text
deltas reach the caller as the provider emits them, and tool calls are announced before the tool
runs. Whatever goes wrong inside a tool goes back to the model as an error result; whatever goes
wrong with the provider ends the run with an `ErrorEvent`; every run ends with one `DoneEvent`.

The first model request of a run is streamed with `pydantic_ai.direct.model_request_stream`,
tools offered: the same request and the same events without the graph's per-event wrappers
(about a third of the client's CPU per token, BENCHMARKS.md). Most replies call no tool, and
then the run is that one request. A reply that calls tools is handed to `Agent.iter` as the end
of its history, and the agent graph runs the calls (as the actor, pausing for approvals) and the
rounds that follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from asgiref.sync import sync_to_async
from django.db import connections
from pydantic_ai import Agent
from pydantic_ai.direct import model_request_stream
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    BinaryContent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    UserContent,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import (
    DeferredToolRequests,
    DeferredToolResults,
    ToolApproved,
    ToolDenied,
)
from pydantic_ai.usage import UsageLimits

from django_ai_chat._toolset import (
    UNBOUNDED_RETRIES,
    ActorToolset,
    RunOnce,
    ToolLike,
    ToolsArg,
    resolve_tools,
)
from django_ai_chat.attachments import ChatFile
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.events import (
    ApprovalRequestEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    PausedRun,
    TextDeltaEvent,
    ThinkingDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.llm import resolve_model
from django_ai_chat.pricing import priced, usage_of

if TYPE_CHECKING:
    from pydantic_ai.models import Model, StreamedResponse
    from pydantic_ai.run import AgentRun

__all__ = [
    "ChatMessage",
    "Resumption",
    "Timeouts",
    "ToolDecision",
    "ToolLike",
    "ToolsArg",
    "agenerate_text",
    "astream",
    "generate_text",
    "stream",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of the history replayed to the model: its text and, for a user turn, its files.

    Each of `files` goes as the file itself (`BinaryContent`) or, when its `as_text` is set, as
    its text; either way after a header line naming it (`ChatFile.header`).
    """

    role: Literal["user", "assistant"]
    text: str
    files: tuple[ChatFile, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise ValueError(f"ChatMessage role must be 'user' or 'assistant', not {self.role!r}.")


@dataclass(frozen=True)
class ToolDecision:
    """The user's answer to one tool call that waited for approval.

    Attributes:
        approved: Run it (as the actor), or not.
        reason: Why not, in the user's words; the model is told it with the denial.
    """

    approved: bool
    reason: str = ""

    def denial(self) -> str:
        """What the model is told instead of a result, when the call was denied."""
        text = "The user denied this tool call; it was not run."
        if self.reason.strip():
            text += f" Their reason: {self.reason.strip()}"
        return text


@dataclass(frozen=True)
class Resumption:
    """How to go on with a run that paused for approvals (`DoneEvent.paused`).

    Attributes:
        paused: The paused run, as the `DoneEvent` gave it (or as it was stored).
        decisions: Call id → the user's decision, one per call of `paused.calls`.
        run_once: Optional guard around each approved call: `run_once(call_id, call)` runs
            `call()` at most once and returns its result (a retried run after a crash must not
            repeat a write); `None` runs it.
    """

    paused: PausedRun
    decisions: Mapping[str, ToolDecision]
    run_once: RunOnce | None = None


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Bounds, in seconds, on how long one run waits for the provider (`None`: unbounded).

    A provider that hangs would otherwise hold an answer until the HTTP client's own read
    timeout (ten minutes for the openai SDK). When a bound expires the run ends with
    `ErrorEvent(reason="timeout")`, keeps the text streamed so far, and closes the provider
    stream. `Timeouts.from_settings()` reads `AI_CHAT_FIRST_TOKEN_TIMEOUT`,
    `AI_CHAT_IDLE_TIMEOUT` and `AI_CHAT_ANSWER_TIMEOUT`.

    Attributes:
        first_token: From the start of a model request (the first, or the next one after tool
            results) to its first text or tool call.
        idle: Between two pieces of text of one streamed reply.
        total: The whole run, tool calls included.
    """

    first_token: float | None = None
    idle: float | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("first_token", "idle", "total"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Timeouts.{name} must be a positive number of seconds or None.")

    @classmethod
    def from_settings(cls) -> Timeouts:
        """The bounds configured by the `AI_CHAT_*_TIMEOUT` settings."""
        return cls(
            first_token=ai_chat_settings.FIRST_TOKEN_TIMEOUT,
            idle=ai_chat_settings.IDLE_TIMEOUT,
            total=ai_chat_settings.ANSWER_TIMEOUT,
        )


class _Clock:
    """Which bound applies to the next wait, from the events seen so far."""

    def __init__(self, bounds: Timeouts, now: float) -> None:
        self.bounds = bounds
        self.deadline = None if bounds.total is None else now + bounds.total
        self.awaiting_reply = True  # a model request started and sent nothing yet
        self.open_calls = 0  # tools announced and not finished: their time is theirs
        self.rounds = 1
        self.text: list[str] = []

    def budget(self, now: float) -> tuple[float | None, str]:
        """Seconds the next wait may take, and what to say when it takes longer."""
        budget: float | None = None
        reason = ""
        if self.open_calls == 0:
            if self.awaiting_reply and self.bounds.first_token is not None:
                budget = self.bounds.first_token
                reason = f"No first token from the model within {budget:g} s"
                reason += " (AI_CHAT_FIRST_TOKEN_TIMEOUT)."
            elif not self.awaiting_reply and self.bounds.idle is not None:
                budget = self.bounds.idle
                reason = f"The model sent nothing for {budget:g} s between tokens"
                reason += " (AI_CHAT_IDLE_TIMEOUT)."
        if self.deadline is not None and (budget is None or self.deadline - now < budget):
            budget = max(0.0, self.deadline - now)
            reason = f"The answer took more than {self.bounds.total:g} s in all"
            reason += " (AI_CHAT_ANSWER_TIMEOUT)."
        return budget, reason

    def saw(self, event: Event) -> None:
        if isinstance(event, TextDeltaEvent):
            self.awaiting_reply = False
            self.text.append(event.text)
        elif isinstance(event, ThinkingDeltaEvent):
            self.awaiting_reply = False  # thinking is the reply starting: the idle bound applies
        elif isinstance(event, ToolCallEvent):
            self.awaiting_reply = False
            self.open_calls += 1
        elif isinstance(event, ToolResultEvent):
            self.open_calls = max(0, self.open_calls - 1)
            if self.open_calls == 0:  # the results go back to the model: a new request
                self.awaiting_reply = True
                self.rounds += 1


def _user_content(message: ChatMessage) -> str | list[UserContent]:
    if not message.files:
        return message.text
    content: list[UserContent] = [message.text] if message.text.strip() else []
    limit = ai_chat_settings.ATTACHMENT_TEXT_LIMIT
    for file in message.files:
        if file.as_text or not file.data:
            text = file.text[:limit] if file.text else "(no text could be read from it)"
            if len(file.text) > limit:
                text += f"\n[… cut at {limit} characters]"
            content.append(f"{file.header()}\n{text}\n[End of {file.name}]")
        else:
            content.append(file.header())
            content.append(BinaryContent(data=file.data, media_type=file.media_type))
    return content


def _to_model_messages(
    messages: Sequence[ChatMessage],
) -> tuple[str | list[UserContent], list[ModelMessage]]:
    turns = [m for m in messages if m.text.strip() or (m.role == "user" and m.files)]
    # The request must end with the user's turn: Anthropic rejects a trailing assistant message.
    while turns and turns[-1].role != "user":
        turns.pop()
    if not turns:
        raise ValueError("The history needs at least one non-empty user message.")
    *earlier, last = turns
    history: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart(_user_content(m))])
        if m.role == "user"
        else ModelResponse(parts=[TextPart(m.text)])
        for m in earlier
    ]
    return _user_content(last), history


def _text_of(event: object) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


def _thinking_of(event: object) -> str:
    # Only readable reasoning: a redacted or encrypted part (a signature only) has no content.
    if isinstance(event, PartStartEvent) and isinstance(event.part, ThinkingPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, ThinkingPartDelta):
        return event.delta.content_delta or ""
    return ""


def _tool_event(event: object) -> ToolCallEvent | ToolResultEvent | None:
    if isinstance(event, FunctionToolCallEvent):
        return ToolCallEvent(
            call_id=event.part.tool_call_id,
            name=event.part.tool_name,
            arguments=event.part.args_as_dict(),
        )
    if isinstance(event, FunctionToolResultEvent):
        part = event.part
        failed = part.outcome != "success"
        return ToolResultEvent(
            call_id=part.tool_call_id,
            name=part.tool_name,
            content=part.model_response_str(wrap_if_error=False) if failed else part.content,
            is_error=failed,
        )
    return None


def _usage(run: AgentRun[None, str] | None, streamed: StreamedResponse | None = None) -> Usage:
    if run is None and streamed is None:
        return Usage()
    try:
        # The direct request's response, priced here (the agent graph prices its own), then the
        # agent run's: a run handed over from the direct request holds that one in its history.
        responses = [priced(streamed.get())] if streamed is not None else []
        if run is not None:
            responses += [m for m in run.new_messages() if isinstance(m, ModelResponse)]
    except Exception:  # usage must never fail an answer
        logger.exception("Could not read the usage of a model run.")
        return Usage()
    return usage_of(responses)


def _root_cause(error: BaseException) -> BaseException:
    seen = {id(error)}
    while (cause := error.__cause__ or error.__context__) is not None and id(cause) not in seen:
        seen.add(id(cause))
        error = cause
    return error


def _error_for(error: Exception) -> ErrorEvent:
    if isinstance(error, ConfigurationError | UserError):
        return ErrorEvent(reason="configuration", message=str(error))
    message = f"{type(error).__name__}: {error}"
    # SDKs wrap the informative error ("Connection error." hides what was refused and why).
    if (root := _root_cause(error)) is not error:
        message += f" (caused by {type(root).__name__}: {root})"
    logger.warning("LLM provider failed: %s", message)
    return ErrorEvent(reason="provider_error", message=message)


def _is_empty(response: ModelResponse) -> bool:
    return not any(
        isinstance(part, ToolCallPart) or (isinstance(part, TextPart) and part.content)
        for part in response.parts
    )


@dataclass(frozen=True)
class _Run:
    prompt: str | list[UserContent]
    history: list[ModelMessage]
    system_prompt: str
    model: str | Model
    tools: ToolsArg
    actor: Any
    max_rounds: int
    resume: Resumption | None = None
    can_pause: bool = True


@dataclass
class _Progress:
    """What a producer has got to, for the consumer that cancels it (a timeout)."""

    run: AgentRun[None, str] | None = None
    streamed: StreamedResponse | None = None  # the direct request's response

    def usage(self) -> Usage:
        return _usage(self.run, self.streamed)


def _paused_messages(messages: list[ModelMessage]) -> list[Any]:
    """The run's messages after the user's prompt (the last request holding one), as JSON."""
    start = 0
    for index, message in enumerate(messages):
        if isinstance(message, ModelRequest) and any(
            isinstance(part, UserPromptPart) for part in message.parts
        ):
            start = index + 1
    stored: list[Any] = ModelMessagesTypeAdapter.dump_python(messages[start:], mode="json")
    return stored


def _resumed_history(run_spec: _Run, resume: Resumption) -> list[ModelMessage]:
    """The history, the user's prompt and the paused run's messages, for a resumed run."""
    paused = ModelMessagesTypeAdapter.validate_python(resume.paused.messages)
    return [*run_spec.history, ModelRequest(parts=[UserPromptPart(run_spec.prompt)]), *paused]


def _deferred_results(resume: Resumption) -> DeferredToolResults:
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    for call_id in resume.paused.calls:
        decision = resume.decisions.get(call_id)
        if decision is None:
            raise ValueError(f"No decision for the paused tool call {call_id!r}.")
        approvals[call_id] = True if decision.approved else ToolDenied(decision.denial())
    return DeferredToolResults(approvals=approvals)


def _iterate(
    agent: Agent[None, str | DeferredToolRequests],
    run_spec: _Run,
    after: tuple[ModelRequest, ModelResponse] | None,
) -> AbstractAsyncContextManager[AgentRun[None, str | DeferredToolRequests]]:
    limits = UsageLimits(request_limit=None)
    if run_spec.resume is not None:
        return agent.iter(
            None,
            message_history=_resumed_history(run_spec, run_spec.resume),
            deferred_tool_results=_deferred_results(run_spec.resume),
            usage_limits=limits,
        )
    if after is not None:
        # A history ending with a reply that calls tools: the graph runs them before any request.
        return agent.iter(None, message_history=[*run_spec.history, *after], usage_limits=limits)
    return agent.iter(run_spec.prompt, message_history=run_spec.history, usage_limits=limits)


async def _pause(
    run: AgentRun[None, str | DeferredToolRequests],
    toolset: ActorToolset,
    emit: Callable[[Event], Awaitable[None]],
) -> PausedRun | None:
    """When the run ended waiting for approvals: announce each, and what goes on from there."""
    result = run.result
    output = result.output if result is not None else None
    if result is None or not isinstance(output, DeferredToolRequests) or not output.approvals:
        return None
    for call in output.approvals:
        arguments = call.args_as_dict()
        await emit(
            ApprovalRequestEvent(
                call_id=call.tool_call_id,
                name=call.tool_name,
                arguments=arguments,
                description=toolset.describe(call.tool_name, arguments),
            )
        )
    return PausedRun(
        messages=_paused_messages(result.all_messages()),
        calls=tuple(call.tool_call_id for call in output.approvals),
    )


async def _produce(
    run_spec: _Run, emit: Callable[[Event], Awaitable[None]], progress: _Progress
) -> None:
    """Run the model (and the tools) and `emit` every event; always ends with a `DoneEvent`."""
    text: list[str] = []
    rounds = 0
    error: ErrorEvent | None = None
    paused: PausedRun | None = None
    try:
        tools = await resolve_tools(run_spec.tools, run_spec.actor)
        model = resolve_model(run_spec.model)  # a misconfigured one makes no request
        toolset = ActorToolset(
            tools,
            run_spec.actor,
            can_pause=run_spec.can_pause,
            run_once=None if run_spec.resume is None else run_spec.resume.run_once,
        )
        if run_spec.resume is not None or not _direct_requests:
            rounds, error, paused = await _agent_run(run_spec, model, toolset, emit, text, progress)
        elif run_spec.max_rounds < 1:
            error = _max_rounds_error(rounds)
        else:
            rounds = 1
            sent = await _direct_request(model, run_spec, toolset, emit, text, progress)
            if tools and sent[-1].tool_calls:
                rounds, error, paused = await _agent_run(
                    run_spec, model, toolset, emit, text, progress, after=sent
                )
    except Exception as caught:
        error = _error_for(caught)
    if error is not None:
        await emit(error)
    await emit(DoneEvent(text="".join(text), usage=progress.usage(), rounds=rounds, paused=paused))


def _max_rounds_error(rounds: int) -> ErrorEvent:
    return ErrorEvent(
        reason="max_rounds", message=f"Stopped after {rounds} model requests (max_rounds)."
    )


_direct_requests = True
"""Whether a run's first request skips the agent graph (`False`: every run goes through it; the
tests run both ways, the benchmarks compare them)."""


async def _direct_request(
    model: Model,
    run_spec: _Run,
    toolset: ActorToolset,
    emit: Callable[[Event], Awaitable[None]],
    text: list[str],
    progress: _Progress,
) -> tuple[ModelRequest, ModelResponse]:
    """The run's first model request, streamed without the agent graph; returns what was sent.

    What `Agent.iter` would send (the history, then the prompt carrying the instructions, the
    actor's tools offered) and the same events. The caller hands a reply that calls tools to the
    agent graph; with no tool offered, a model that calls one anyway gets no answer to it (the
    agent would tell it the tool does not exist and ask again).
    """
    request = ModelRequest(
        parts=[UserPromptPart(run_spec.prompt)], instructions=run_spec.system_prompt or None
    )
    parameters = ModelRequestParameters(function_tools=toolset.definitions())
    async with model_request_stream(
        model, [*run_spec.history, request], model_request_parameters=parameters
    ) as response:
        progress.streamed = response
        async for event in response:
            if delta := _text_of(event):
                text.append(delta)
                await emit(TextDeltaEvent(text=delta))
            elif thought := _thinking_of(event):
                await emit(ThinkingDeltaEvent(text=thought))
    return request, response.get()


async def _agent_run(
    run_spec: _Run,
    model: Model,
    toolset: ActorToolset,
    emit: Callable[[Event], Awaitable[None]],
    text: list[str],
    progress: _Progress,
    *,
    after: tuple[ModelRequest, ModelResponse] | None = None,
) -> tuple[int, ErrorEvent | None, PausedRun | None]:
    """The tool loop through `Agent.iter`: returns its rounds, its error and its pause.

    `after`: the first request and its reply calling tools (`_direct_request`), from which the
    run goes on: the graph runs the calls first (the rounds returned count that request).
    """
    rounds = 0
    error: ErrorEvent | None = None
    paused: PausedRun | None = None
    resume = run_spec.resume
    # Calls announced when the run paused: pydantic-ai announces them again when it resumes.
    announced = set(resume.paused.calls) if resume is not None else set()
    if after is not None:
        rounds = 1  # the direct request, counted against `max_rounds`
    try:
        agent: Agent[None, str | DeferredToolRequests] = Agent(
            model,
            instructions=run_spec.system_prompt or None,
            toolsets=[toolset],
            retries=UNBOUNDED_RETRIES,
            output_type=[str, DeferredToolRequests],
        )
        async with _iterate(agent, run_spec, after) as run:
            progress.run = cast("AgentRun[None, str]", run)
            node = run.next_node
            while not Agent.is_end_node(node):
                if Agent.is_model_request_node(node):
                    if rounds >= run_spec.max_rounds:
                        error = _max_rounds_error(rounds)
                        break
                    rounds += 1
                    async with node.stream(run.ctx) as request_stream:
                        async for event in request_stream:
                            if delta := _text_of(event):
                                text.append(delta)
                                await emit(TextDeltaEvent(text=delta))
                            elif thought := _thinking_of(event):
                                await emit(ThinkingDeltaEvent(text=thought))
                elif Agent.is_call_tools_node(node):
                    if _is_empty(node.model_response):
                        # pydantic-ai would ask again, and a model that said nothing once says
                        # nothing again: up to `max_rounds` identical requests. The caller
                        # sees a run without text (the responder shows its "empty" message).
                        break
                    async with node.stream(run.ctx) as tools_stream:
                        async for event in tools_stream:
                            if (
                                isinstance(event, FunctionToolCallEvent)
                                and event.part.tool_call_id in announced
                            ):
                                announced.discard(event.part.tool_call_id)
                                continue
                            if tool_event := _tool_event(event):
                                await emit(tool_event)
                node = await run.next(node)
            paused = await _pause(run, toolset, emit)
    except Exception as caught:
        error = _error_for(caught)
    return rounds, error, paused


_END: Final = object()
"""Queued after the producer's last event when the consumer would otherwise wait forever."""


async def _next_event(queue: asyncio.Queue[object], producer: asyncio.Task[None]) -> Event | None:
    """The next queued event; `None` once the producer has ended and nothing is left.

    A plain `queue.get()`: the producer's done-callback (`_end_queue`) queues `_END` when it
    ends with nothing queued, so no task and no `asyncio.wait` is needed per event (one per
    streamed token).
    """
    if queue.empty() and producer.done():
        producer.result()  # re-raises whatever killed the producer
        return None
    item = await queue.get()
    if item is _END:
        producer.result()
        return None
    return cast(Event, item)


def _end_queue(queue: asyncio.Queue[object]) -> Callable[[asyncio.Task[None]], None]:
    def end(_producer: asyncio.Task[None]) -> None:
        if queue.empty():
            queue.put_nowait(_END)

    return end


async def astream(
    messages: Sequence[ChatMessage],
    *,
    system_prompt: str,
    model: str | Model,
    tools: ToolsArg = True,
    actor: Any = None,
    max_rounds: int | None = None,
    timeouts: Timeouts | None = None,
    resume: Resumption | None = None,
    can_pause: bool = True,
) -> AsyncGenerator[Event, None]:
    """Run the tool loop and yield its events as they happen.

    The model run lives in its own task, one event ahead of the consumer at most, so the
    iterator may be advanced from any task (e.g. under `asyncio.wait_for`). Closing the iterator
    (`aclose()`; wrap it in `contextlib.aclosing` when you may `break` early, since `async for`
    does not close it) or cancelling the consumer cancels the run and closes the provider stream.

    Args:
        messages: The conversation so far, oldest first, ending with the user's message (assistant
            messages after the last user message are ignored; empty messages are skipped).
        system_prompt: Instructions for the model.
        model: A model string (see `django_ai_chat.llm.resolve_model`) or a pydantic-ai model.
        tools: `True` for every tool `actor` may use, `False` for none, a list of tool names, or a
            list of tool objects (`name`, `description`, `parameters`, `acall(arguments, actor)`).
        actor: Who the tools run as (a user, or `None` in no-user mode).
        max_rounds: Model requests allowed; defaults to `AI_CHAT_MAX_ROUNDS`.
        timeouts: Bounds on the waits for the provider; defaults to `Timeouts.from_settings()`.
        resume: Go on with a run that paused for approvals (`DoneEvent.paused`) with the
            user's decisions: approved calls run as `actor`, the model is told of denied ones;
            `messages` must be the history the paused run was given.
        can_pause: Whether a call needing approval (`tools.needs_approval`) may pause the
            run; `False`: such a call is refused (the model is told it was not run).

    Yields:
        `TextDeltaEvent` as text streams in, `ThinkingDeltaEvent` as the model's reasoning
        does (providers that stream it); `ToolCallEvent` before a tool runs and
        `ToolResultEvent` after (`is_error=True` for invalid arguments or a raising tool);
        `ErrorEvent` when the run stops early (`max_rounds`, `provider_error`, `configuration`,
        `timeout`); `ApprovalRequestEvent` for each call that waits for the user's approval,
        after which the run stops;
        finally one `DoneEvent` with all text, summed usage, the number of rounds and, when
        the run paused, `paused`.

    Raises:
        ValueError: `messages` holds no user message.
    """
    prompt, history = _to_model_messages(messages)
    run_spec = _Run(
        prompt=prompt,
        history=history,
        system_prompt=system_prompt,
        model=model,
        tools=tools,
        actor=actor,
        max_rounds=ai_chat_settings.MAX_ROUNDS if max_rounds is None else max_rounds,
        resume=resume,
        can_pause=can_pause,
    )
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
    progress = _Progress()
    producer = asyncio.create_task(
        _produce(run_spec, queue.put, progress), name="django_ai_chat.loop"
    )
    producer.add_done_callback(_end_queue(queue))
    loop = asyncio.get_running_loop()
    clock = _Clock(timeouts or Timeouts.from_settings(), loop.time())
    if resume is not None:
        # The decided calls run (or are refused) first: their time is theirs, as for any call.
        clock.awaiting_reply = False
        clock.open_calls = len(resume.paused.calls)
    try:
        while True:
            budget, reason = clock.budget(loop.time())
            timeout = asyncio.timeout(budget)
            try:
                async with timeout:
                    event = await _next_event(queue, producer)
            except TimeoutError:
                if not timeout.expired():
                    raise
                logger.warning("LLM provider timed out: %s", reason)
                producer.cancel()  # closes the provider stream
                await asyncio.wait({producer})
                yield ErrorEvent(reason="timeout", message=reason)
                # The requests that completed were billed: their usage counts (a limit, the cost).
                yield DoneEvent(
                    text="".join(clock.text), usage=progress.usage(), rounds=clock.rounds
                )
                break
            if event is None:
                break
            clock.saw(event)
            yield event
            if isinstance(event, DoneEvent):
                break
    finally:
        if not producer.done():
            producer.cancel()
            # `wait` neither raises the producer's CancelledError nor swallows our own.
            await asyncio.wait({producer})


def _refuse_running_loop(message: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(message)


def stream(
    messages: Sequence[ChatMessage],
    *,
    system_prompt: str,
    model: str | Model,
    tools: ToolsArg = True,
    actor: Any = None,
    max_rounds: int | None = None,
    timeouts: Timeouts | None = None,
    resume: Resumption | None = None,
    can_pause: bool = True,
) -> Iterator[Event]:
    """Synchronous `astream`: the same events, on a private event loop in this thread.

    For scripts and management commands; async code (workers, views) should use `astream`.
    Stopping early (`break`, `close()`) closes the provider stream.

    Args:
        messages: The conversation so far, oldest first, ending with the user's message.
        system_prompt: Instructions for the model.
        model: A model string or a pydantic-ai model.
        tools: `True`, `False`, tool names or tool objects (as for `astream`).
        actor: Who the tools run as.
        max_rounds: Model requests allowed; defaults to `AI_CHAT_MAX_ROUNDS`.
        timeouts: Bounds on the waits for the provider (as for `astream`).
        resume: A paused run and the user's decisions (as for `astream`).
        can_pause: Whether a call needing approval pauses the run (as for `astream`).

    Yields:
        The events of `astream`, ending with one `DoneEvent`.

    Raises:
        RuntimeError: called from a thread that runs an event loop (use `astream` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "stream() cannot run inside an event loop; use `async for` on astream()."
        )
    loop = asyncio.new_event_loop()
    events = astream(
        messages,
        system_prompt=system_prompt,
        model=model,
        tools=tools,
        actor=actor,
        max_rounds=max_rounds,
        timeouts=timeouts,
        resume=resume,
        can_pause=can_pause,
    )
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(events.aclose())
        # Tools reach the ORM through `sync_to_async`, which here runs in asgiref's shared thread
        # (there is no `async_to_sync` caller to return to): close what they opened there.
        loop.run_until_complete(sync_to_async(connections.close_all, thread_sensitive=True)())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def agenerate_text(
    messages: Sequence[ChatMessage], *, system_prompt: str, model: str | Model
) -> str:
    """One non-streamed answer without tools (e.g. a conversation title).

    Args:
        messages: The conversation, oldest first, ending with a user message.
        system_prompt: Instructions for the model.
        model: A model string or a pydantic-ai model.

    Returns:
        The model's text.

    Raises:
        ConfigurationError: the model string cannot be resolved.
        ValueError: `messages` holds no user message.
        pydantic_ai.exceptions.AgentRunError: the provider failed.
    """
    prompt, history = _to_model_messages(messages)
    agent: Agent[None, str] = Agent(resolve_model(model), instructions=system_prompt or None)
    result = await agent.run(prompt, message_history=history)
    return result.output


def generate_text(
    messages: Sequence[ChatMessage], *, system_prompt: str, model: str | Model
) -> str:
    """Synchronous `agenerate_text` (same arguments); not callable inside a running event loop.

    Raises:
        RuntimeError: called from a thread that runs an event loop.
    """
    _refuse_running_loop("generate_text() cannot run inside an event loop; await agenerate_text().")
    return asyncio.run(agenerate_text(messages, system_prompt=system_prompt, model=model))
