from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from django_ai_chat.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from django_ai_chat.exceptions import ToolError
from django_ai_chat.loop import ChatMessage, agenerate_text, astream, generate_text, stream
from django_ai_chat.testing import ScriptedLLM, ToolCall, register_model, unregister_model
from tests.testapp.models import Note

HI = [ChatMessage("user", "Hi")]


@dataclass
class Lookup:
    """A tool satisfying the loop's protocol; records who called it with what."""

    name: str = "lookup"
    description: str = "Look a word up."
    parameters: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        }
    )
    calls: list[tuple[dict[str, Any], Any]] = field(default_factory=list)

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        self.calls.append((arguments, actor))
        if "word" not in arguments:
            raise ToolError("'word' is required")
        return {"word": arguments["word"], "meaning": "a greeting"}


@dataclass
class Broken:
    name: str = "broken"
    description: str = "Always fails."
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    error: Exception = field(default_factory=lambda: RuntimeError("password=hunter2 in SQL"))

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        raise self.error


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDeltaEvent)]


async def test_streams_text_calls_the_tool_as_the_actor_and_streams_more() -> None:
    tool = Lookup()
    llm = ScriptedLLM(
        [
            ["Let me ", "look that up. ", ToolCall("lookup", {"word": "hello"})],
            ["It is ", "a greeting."],
        ]
    )

    events = await collect(
        astream(HI, system_prompt="Be brief.", model=llm, tools=[tool], actor="alice")
    )

    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert events == [
        TextDeltaEvent(text="Let me "),
        TextDeltaEvent(text="look that up. "),
        ToolCallEvent(call_id="call_1", name="lookup", arguments={"word": "hello"}),
        ToolResultEvent(
            call_id="call_1", name="lookup", content={"word": "hello", "meaning": "a greeting"}
        ),
        TextDeltaEvent(text="It is "),
        TextDeltaEvent(text="a greeting."),
        DoneEvent(text="Let me look that up. It is a greeting.", usage=done.usage, rounds=2),
    ]
    assert tool.calls == [({"word": "hello"}, "alice")]
    assert done.usage.requests == 2
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0


async def test_the_model_sees_the_system_prompt_the_history_and_the_tool() -> None:
    llm = ScriptedLLM([["Fine."]])
    history = [
        ChatMessage("user", "First question"),
        ChatMessage("assistant", "First answer"),
        ChatMessage("user", "Second question"),
    ]

    await collect(astream(history, system_prompt="You are terse.", model=llm, tools=[Lookup()]))

    [request] = llm.requests
    parts = [(type(m).__name__, p.content) for m in request for p in m.parts]  # type: ignore[union-attr]
    assert parts == [
        ("ModelRequest", "First question"),
        ("ModelResponse", "First answer"),
        ("ModelRequest", "Second question"),
    ]
    assert request[-1].instructions == "You are terse."  # type: ignore[union-attr]


async def test_the_request_ends_with_the_user_message() -> None:
    llm = ScriptedLLM([["Answer."]])
    history = [
        ChatMessage("user", "Question"),
        ChatMessage("assistant", "A partial answer that was stopped"),
        ChatMessage("assistant", ""),
    ]

    await collect(astream(history, system_prompt="", model=llm, tools=False))

    [request] = llm.requests
    assert isinstance(request[-1], ModelRequest)
    assert [p.content for p in request[-1].parts if isinstance(p, UserPromptPart)] == ["Question"]
    assert not any(isinstance(m, ModelResponse) for m in request)


def test_a_chat_message_has_a_user_or_assistant_role() -> None:
    with pytest.raises(ValueError, match="'system'"):
        ChatMessage("system", "You are a pirate.")  # type: ignore[arg-type]


async def test_a_history_without_a_user_message_is_refused() -> None:
    with pytest.raises(ValueError, match="user message"):
        await collect(
            astream([ChatMessage("assistant", "Hello")], system_prompt="", model=ScriptedLLM())
        )


async def test_invalid_tool_arguments_go_back_to_the_model_and_the_run_continues() -> None:
    tool = Lookup()
    llm = ScriptedLLM(
        [
            [ToolCall("lookup", '{"word": "unterminated')],
            [ToolCall("lookup", {"spelling": "hello"})],
            [ToolCall("no_such_tool", {})],
            ["Sorry, I could not look it up."],
        ]
    )

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[tool], max_rounds=4))

    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [(r.name, r.is_error) for r in results] == [
        ("lookup", True),
        ("lookup", True),
        ("no_such_tool", True),
    ]
    assert "Invalid JSON" in results[0].content
    assert results[1].content == "'word' is required"
    assert "no_such_tool" in results[2].content
    assert tool.calls == [({"spelling": "hello"}, None)]
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].text == "Sorry, I could not look it up."
    assert not any(isinstance(e, ErrorEvent) for e in events)
    # The model was told about each failure in the next request.
    assert "'word' is required" in str(llm.requests[2][-1])


async def test_an_unexpected_tool_exception_reaches_the_model_without_its_details() -> None:
    llm = ScriptedLLM([[ToolCall("broken")], ["The tool failed."]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[Broken()]))

    [result] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert result.is_error
    assert "RuntimeError" in result.content
    assert "hunter2" not in result.content
    assert "hunter2" not in str(llm.requests[1])
    assert events[-1] == DoneEvent(text="The tool failed.", usage=events[-1].usage, rounds=2)  # type: ignore[union-attr]


async def test_max_rounds_ends_with_an_error_then_done() -> None:
    llm = ScriptedLLM([["Again. ", ToolCall("lookup", {"word": "x"})] for _ in range(5)])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[Lookup()], max_rounds=2))

    assert len(llm.requests) == 2
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.reason == "max_rounds"
    assert isinstance(done, DoneEvent)
    assert done.rounds == 2
    assert done.text == "Again. Again. "
    assert sum(isinstance(e, ToolResultEvent) for e in events) == 2


async def test_max_rounds_defaults_to_the_setting(settings: Any) -> None:
    settings.AI_CHAT_MAX_ROUNDS = 1
    llm = ScriptedLLM([[ToolCall("lookup", {"word": "x"})], ["never reached"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[Lookup()]))

    assert isinstance(events[-2], ErrorEvent) and events[-2].reason == "max_rounds"
    assert len(llm.requests) == 1


async def test_a_provider_error_mid_stream_keeps_the_text_so_far() -> None:
    llm = ScriptedLLM([["Half ", "an ", ConnectionResetError("peer went away"), "never"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=False))

    assert texts(events) == ["Half ", "an "]
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert "peer went away" in error.message
    assert isinstance(done, DoneEvent) and done.text == "Half an "


async def test_a_misconfigured_model_is_a_configuration_error_event() -> None:
    events = await collect(astream(HI, system_prompt="", model="nonsense:model", tools=False))

    error, done = events
    assert isinstance(error, ErrorEvent) and error.reason == "configuration"
    assert "'nonsense'" in error.message
    assert done == DoneEvent(text="", rounds=0)


async def test_an_exhausted_script_says_so() -> None:
    events = await collect(astream(HI, system_prompt="", model=ScriptedLLM(), tools=False))

    error = events[-2]
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert "no turn left" in error.message


async def test_model_strings_resolve_through_the_test_registry() -> None:
    register_model("loop-test", ScriptedLLM([["From the registry."]]))
    try:
        events = await collect(astream(HI, system_prompt="", model="test:loop-test", tools=False))
    finally:
        unregister_model("loop-test")

    assert texts(events) == ["From the registry."]


async def test_deltas_arrive_before_the_provider_finishes_the_answer() -> None:
    first_delta_seen = asyncio.Event()

    async def stream_function(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "Before "
        # Only a loop that forwards deltas as they come lets the consumer set this in time.
        await asyncio.wait_for(first_delta_seen.wait(), timeout=5)
        yield "after."

    model = FunctionModel(stream_function=stream_function)
    seen = []
    async for event in astream(HI, system_prompt="", model=model, tools=False):
        seen.append(event)
        if isinstance(event, TextDeltaEvent):
            first_delta_seen.set()

    assert texts(seen) == ["Before ", "after."]
    assert not any(isinstance(e, ErrorEvent) for e in seen)


async def test_closing_the_iterator_closes_the_provider_stream() -> None:
    closed = asyncio.Event()

    async def stream_function(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            for n in range(1000):
                yield f"{n} "
                await asyncio.sleep(0)
        finally:
            closed.set()

    events = astream(HI, system_prompt="", model=FunctionModel(stream_function=stream_function))
    received = [await anext(events) for _ in range(3)]
    await events.aclose()

    assert texts(received) == ["0 ", "1 ", "2 "]
    assert closed.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_consumer_task_closes_the_provider_stream() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def stream_function(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            yield "Working "
            started.set()
            await asyncio.sleep(60)
            yield "never"
        finally:
            closed.set()

    async def consume() -> list[Event]:
        model = FunctionModel(stream_function=stream_function)
        return await collect(astream(HI, system_prompt="", model=model, tools=False))

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_the_sync_wrapper_yields_the_same_events() -> None:
    llm = ScriptedLLM([["One ", ToolCall("lookup", {"word": "w"})], ["two."]])

    events = list(stream(HI, system_prompt="", model=llm, tools=[Lookup()], actor="bob"))

    assert [e.kind for e in events] == [
        "text_delta",
        "tool_call",
        "tool_result",
        "text_delta",
        "done",
    ]
    assert events[-1] == DoneEvent(text="One two.", usage=events[-1].usage, rounds=2)  # type: ignore[union-attr]


def test_breaking_out_of_the_sync_wrapper_closes_the_stream() -> None:
    closed = []

    async def stream_function(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            for n in range(1000):
                yield f"{n} "
        finally:
            closed.append(True)

    for event in stream(HI, system_prompt="", model=FunctionModel(stream_function=stream_function)):
        assert isinstance(event, TextDeltaEvent)
        break

    assert closed == [True]


async def test_the_sync_wrapper_refuses_to_run_inside_an_event_loop() -> None:
    with pytest.raises(RuntimeError, match="astream"):
        next(stream(HI, system_prompt="", model=ScriptedLLM([["x"]])))


async def test_agenerate_text_returns_the_answer_without_streaming() -> None:
    llm = ScriptedLLM([["Weekend ", "plans"]])

    title = await agenerate_text(
        [ChatMessage("user", "What should I do this weekend?")],
        system_prompt="Give a short title.",
        model=llm,
    )

    assert title == "Weekend plans"
    assert llm.requests[0][-1].instructions == "Give a short title."  # type: ignore[union-attr]


def test_generate_text_is_the_sync_version() -> None:
    assert generate_text(HI, system_prompt="", model=ScriptedLLM([["Greeting"]])) == "Greeting"


def make_user(username: str) -> User:
    user = User.objects.create_user(username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="testapp"))
    return User.objects.get(pk=user.pk)


@pytest.mark.django_db(transaction=True)
async def test_a_registered_model_action_tool_runs_as_the_actor() -> None:
    from asgiref.sync import sync_to_async

    def setup() -> User:
        alice, bob = make_user("alice"), make_user("bob")
        Note.objects.create(owner=alice, title="Groceries")
        Note.objects.create(owner=bob, title="Bob's secret")
        return alice

    alice = await sync_to_async(setup)()
    llm = ScriptedLLM(
        [
            ["Checking your notes. ", ToolCall("read_notes", {})],
            ["You have one note."],
        ]
    )

    try:
        events = await collect(
            astream(HI, system_prompt="", model=llm, tools=["read_notes"], actor=alice)
        )
    finally:
        # The tools ran in Django's sync thread; its connection must not outlive the test DB.
        await sync_to_async(connections.close_all)()

    [result] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert not result.is_error
    assert "Groceries" in str(result.content)
    assert "Bob's secret" not in str(result.content)
    assert texts(events) == ["Checking your notes. ", "You have one note."]
    # Only the selected tool was offered to the model.
    assert llm.tool_names == [["read_notes"], ["read_notes"]]


async def test_plain_text_history_replay_uses_text_parts_only() -> None:
    llm = ScriptedLLM([["ok"]])
    history = [ChatMessage("user", "a"), ChatMessage("assistant", "b"), ChatMessage("user", "c")]

    await collect(astream(history, system_prompt="", model=llm, tools=False))

    response = llm.requests[0][1]
    assert isinstance(response, ModelResponse)
    assert response.parts == [TextPart("b")]


@pytest.mark.django_db(transaction=True)
def test_the_sync_wrapper_runs_registered_model_tools() -> None:
    alice = make_user("alice")
    Note.objects.create(owner=alice, title="Groceries")
    llm = ScriptedLLM([[ToolCall("read_notes", {})], ["Done."]])

    events = list(stream(HI, system_prompt="", model=llm, tools=["read_notes"], actor=alice))

    [result] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert not result.is_error
    assert "Groceries" in str(result.content)


@pytest.mark.parametrize("turn", [[], [""], ["  \n"]], ids=["no-parts", "empty", "blank"])
async def test_an_empty_model_reply_ends_the_run_without_asking_again(turn: list[str]) -> None:
    # pydantic-ai re-prompts a model that returned no text and no tool call; with our unbounded
    # retries that meant up to max_rounds identical requests for one empty reply.
    llm = ScriptedLLM([turn, ["never requested"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[Lookup()]))

    assert len(llm.requests) == 1
    assert not any(isinstance(e, ErrorEvent) for e in events)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.text.strip() == "" and done.rounds == 1


async def test_an_empty_reply_after_a_tool_round_ends_the_run_with_the_text_so_far() -> None:
    llm = ScriptedLLM([["Looking. ", ToolCall("lookup", {"word": "x"})], [], ["never"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[Lookup()]))

    assert len(llm.requests) == 2
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.text == "Looking. " and done.rounds == 2
