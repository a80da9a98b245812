"""A run in which no tool can be called skips pydantic-ai's agent graph, and behaves the same.

Most tests here run twice (`path`): through the direct request (`pydantic_ai.direct`) and, with
the loop's switch off, through `Agent.iter`, as every run went before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from django_ai_chat import loop
from django_ai_chat.answers import Responder
from django_ai_chat.attachments import ChatFile
from django_ai_chat.events import DoneEvent, ErrorEvent, Event, TextDeltaEvent
from django_ai_chat.loop import ChatMessage, Timeouts, astream
from django_ai_chat.streaming import messages_topic, request_stop
from django_ai_chat.testing import (
    FakeOpenAIServer,
    ReportedUsage,
    ScriptedLLM,
    Thinking,
    ToolCall,
    make_user,
    register_model,
    sample_png,
    unregister_model,
)
from django_ai_chat.worker import HandedOver, _handover_event
from tests.runtime.test_loop import Lookup
from tests.testapp.models import Conversation, Message

HI = [ChatMessage("user", "Hi")]
WAIT = 20.0  # upper bound for an event to arrive; never a speed assertion
HANG = 30.0  # far beyond every bound below: reaching it means the bound did not hold


@pytest.fixture(params=["direct", "agent"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once per path: the direct request, and `Agent.iter` (the switch off)."""
    monkeypatch.setattr(loop, "_direct_requests", request.param == "direct")
    return str(request.param)


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDeltaEvent)]


class Provider:
    """A streaming model whose turn sleeps where told; records whether its stream was closed."""

    def __init__(self, *items: str | float) -> None:
        self.items = items
        self.closed = asyncio.Event()
        self.started = asyncio.Event()
        self.model = FunctionModel(stream_function=self._stream)

    async def _stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            for item in self.items:
                if isinstance(item, float):
                    self.started.set()
                    await asyncio.sleep(item)
                else:
                    yield item
        finally:
            self.closed.set()


@pytest.mark.parametrize(
    "tools", [False, [], [Lookup()]], ids=["False", "empty list", "a tool offered"]
)
async def test_a_reply_that_calls_no_tool_makes_no_agent_run(
    monkeypatch: pytest.MonkeyPatch, tools: Any
) -> None:
    def no_agent(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the agent graph was used")

    monkeypatch.setattr(Agent, "iter", no_agent)
    llm = ScriptedLLM([["Hello ", "there."], [ToolCall("lookup", {"word": "hi"})]])

    events = await collect(astream(HI, system_prompt="Be kind.", model=llm, tools=tools))
    calling = await collect(astream(HI, system_prompt="", model=llm, tools=[Lookup()]))

    assert texts(events) == ["Hello ", "there."]
    done = events[-1]
    assert isinstance(done, DoneEvent) and (done.text, done.rounds) == ("Hello there.", 1)
    assert done.usage.requests == 1 and done.usage.output_tokens > 0
    assert llm.tool_names[0] == ([] if not tools else ["lookup"])
    # A reply that calls a tool is handed to the agent graph (here: the patched one).
    error = calling[-2]
    assert isinstance(error, ErrorEvent) and "the agent graph was used" in error.message


async def test_a_tool_call_in_the_first_reply_runs_as_through_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The direct request hands a reply that calls tools to the graph: same requests, events."""
    script = [
        ["Let me look. ", ToolCall("lookup", {"word": "hi"}), ReportedUsage(10, 5)],
        ["It means ", "a greeting.", ReportedUsage(20, 6)],
    ]
    runs: dict[str, tuple[list[Event], list[dict[str, Any]], Lookup]] = {}
    for name in ("agent", "direct"):
        monkeypatch.setattr(loop, "_direct_requests", name == "direct")
        lookup = Lookup()
        # A server each: its call ids count from one, so both runs' requests can be compared.
        with FakeOpenAIServer(script=script) as server:
            async with OpenAIChatModel(
                "gpt-4o", provider=OpenAIProvider(base_url=server.base_url, api_key="x")
            ) as model:
                events = await collect(
                    astream(HI, system_prompt="Be brief.", model=model, tools=[lookup], actor="al")
                )
            runs[name] = (events, server.requests, lookup)

    (agent_events, agent_requests, _), (events, requests, lookup) = runs["agent"], runs["direct"]
    assert requests == agent_requests and len(requests) == 2
    assert requests[0]["tools"][0]["function"]["name"] == "lookup"
    assert requests[1]["messages"][-1]["role"] == "tool"
    assert events == agent_events
    assert [e.kind for e in events] == [
        "text_delta",
        "tool_call",
        "tool_result",
        "text_delta",
        "text_delta",
        "done",
    ]
    assert lookup.calls == [({"word": "hi"}, "al")]  # once, as the actor
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert (done.text, done.rounds) == ("Let me look. It means a greeting.", 2)
    assert (done.usage.requests, done.usage.input_tokens, done.usage.output_tokens) == (2, 30, 11)


async def test_max_rounds_counts_the_direct_request(path: str) -> None:
    llm = ScriptedLLM([[ToolCall("lookup", {"word": "hi"})], ["never"]])
    lookup = Lookup()

    events = await collect(astream(HI, system_prompt="", model=llm, tools=[lookup], max_rounds=1))

    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.reason == "max_rounds"
    assert isinstance(done, DoneEvent) and done.rounds == 1
    assert len(llm.requests) == 1 and len(lookup.calls) == 1


async def test_both_paths_send_the_same_request_and_give_the_same_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    png = sample_png()
    history = [
        ChatMessage(
            "user",
            "What is in these?",
            files=(
                ChatFile("dot.png", "image/png", len(png), data=png, as_text=False),
                ChatFile("notes.txt", "text/plain", 11, text="eggs, flour"),
            ),
        ),
        ChatMessage("assistant", "A picture and a list."),
        ChatMessage("user", "And now?"),
    ]
    turn = [
        Thinking("Let me "),
        Thinking("think."),
        "The ",
        "answer.",
        ReportedUsage(input_tokens=120, output_tokens=30, reasoning_tokens=7),
    ]
    runs: dict[str, tuple[list[Event], dict[str, Any]]] = {}
    with FakeOpenAIServer(script=[turn, turn]) as server:
        # Closed at the end: its pooled connection must not outlive the test's loop.
        async with OpenAIChatModel(
            "gpt-4o", provider=OpenAIProvider(base_url=server.base_url, api_key="x")
        ) as model:
            for name in ("agent", "direct"):
                monkeypatch.setattr(loop, "_direct_requests", name == "direct")
                events = await collect(
                    astream(history, system_prompt="Be brief.", model=model, tools=False)
                )
                runs[name] = (events, server.requests[-1])

    (agent_events, agent_request), (direct_events, direct_request) = runs["agent"], runs["direct"]
    assert direct_request == agent_request
    assert direct_request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [e.kind for e in direct_events] == [
        "thinking_delta",
        "thinking_delta",
        "text_delta",
        "text_delta",
        "done",
    ]
    assert direct_events == agent_events
    done = direct_events[-1]
    assert isinstance(done, DoneEvent)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (120, 30)
    assert done.usage.reasoning_tokens == 7 and done.usage.model_name == "gpt-4o"
    # Priced as the agent graph prices a response (genai-prices knows gpt-4o).
    assert isinstance(done.usage.cost, Decimal) and done.usage.cost > 0


async def test_a_provider_error_mid_stream_keeps_the_text_so_far(path: str) -> None:
    llm = ScriptedLLM([["Half ", "an ", ConnectionResetError("peer went away"), "never"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=False))

    assert texts(events) == ["Half ", "an "]
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert "peer went away" in error.message
    assert isinstance(done, DoneEvent) and (done.text, done.rounds) == ("Half an ", 1)


async def test_no_rounds_allowed_makes_no_request(path: str) -> None:
    llm = ScriptedLLM([["never"]])

    events = await collect(astream(HI, system_prompt="", model=llm, tools=False, max_rounds=0))

    error, done = events
    assert isinstance(error, ErrorEvent) and error.reason == "max_rounds"
    assert isinstance(done, DoneEvent) and (done.text, done.rounds) == ("", 0)
    assert llm.requests == []


@pytest.mark.parametrize(
    ("items", "timeouts", "said", "text"),
    [
        ((HANG, "never"), Timeouts(first_token=0.2), "first token", ""),
        (
            ("Half ", "an answer", HANG, "never"),
            Timeouts(idle=0.2),
            "between tokens",
            "Half an answer",
        ),
        (
            ("Slow ", 0.1, "but ", 0.1, "steady", HANG),
            Timeouts(total=0.5),
            "in all",
            "Slow but steady",
        ),
    ],
    ids=["first token", "idle", "total"],
)
async def test_a_hung_provider_ends_with_a_timeout_and_its_stream_closed(
    path: str, items: tuple[str | float, ...], timeouts: Timeouts, said: str, text: str
) -> None:
    provider = Provider(*items)

    events = await collect(
        astream(HI, system_prompt="", model=provider.model, tools=False, timeouts=timeouts)
    )

    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.reason == "timeout" and said in error.message
    assert isinstance(done, DoneEvent) and done.text == text
    assert provider.closed.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_closing_the_iterator_closes_the_provider_stream(path: str) -> None:
    provider = Provider("Working ", HANG, "never")

    events = astream(HI, system_prompt="", model=provider.model, tools=False)
    received = [await anext(events)]
    await events.aclose()

    assert texts(received) == ["Working "]
    assert provider.closed.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


class ToollessResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    tools = False  # the model: the settings' "test:scripted"


@pytest.fixture
async def hanging() -> AsyncIterator[Provider]:
    provider = Provider("Working on it.", HANG, "never")
    register_model("scripted", provider.model)
    yield provider
    unregister_model("scripted")
    await sync_to_async(connections.close_all)()


async def start_answer(provider: Provider) -> tuple[Message, asyncio.Task[None]]:
    actor = await sync_to_async(make_user)("alice")
    conversation = await Conversation.objects.acreate(user=actor)
    question = await Message.objects.acreate(conversation=conversation, text="Hi")
    run = asyncio.create_task(ToollessResponder().respond(question.pk, actor=actor))
    async with asyncio.timeout(WAIT):
        await provider.started.wait()
    return question, run


@pytest.mark.django_db(transaction=True)
async def test_a_stop_request_ends_a_toolless_answer_with_the_text_so_far(
    path: str, hanging: Provider
) -> None:
    question, run = await start_answer(hanging)
    running = await Message.objects.aget(response_to=question)

    await sync_to_async(request_stop)(messages_topic(question.conversation_id), running.pk)
    async with asyncio.timeout(WAIT):
        await run

    answer = await Message.objects.aget(response_to=question)
    assert (answer.text, answer.complete, answer.stopped, answer.error) == (
        "Working on it.",
        True,
        True,
        "",
    )
    assert hanging.closed.is_set()


@pytest.mark.django_db(transaction=True)
async def test_a_handover_saves_a_toolless_answers_text_and_leaves_it_open(
    path: str, hanging: Provider
) -> None:
    question, run = await start_answer(hanging)

    _handover_event().set()
    with pytest.raises(HandedOver):
        await run

    answer = await Message.objects.aget(response_to=question)
    assert (answer.text, answer.complete, answer.error) == ("Working on it.", False, "")
