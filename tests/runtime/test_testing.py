from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.test import override_settings
from openai import AsyncOpenAI
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from django_ai_chat.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    TextDeltaEvent,
    ThinkingDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from django_ai_chat.loop import ChatMessage, agenerate_text, astream
from django_ai_chat.testing import (
    FakeOpenAIServer,
    RealLLMRequestBlocked,
    ScriptedLLM,
    ToolCall,
    Turn,
    block_real_llm_requests,
    emit_schedule,
    make_user,
)


@dataclass
class Echo:
    name: str = "echo"
    description: str = "Echo the arguments."
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    calls: list[tuple[dict[str, Any], Any]] = field(default_factory=list)

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        self.calls.append((arguments, actor))
        if arguments.get("fail"):
            raise ValueError("asked to fail")
        return {"echo": arguments}


@dataclass
class ListConversations(Echo):
    name: str = "chat_list_conversations"

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        return {"results": [{"title": "Trip"}, {"title": "Recipes"}], "count": 2}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens=8) as fake:
        yield fake


@contextlib.asynccontextmanager
async def openai_model(server: FakeOpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    # Closed on exit: the provider's own HTTP client keeps its connection to the server pooled,
    # and left open it outlives the test's event loop (a ResourceWarning when collected).
    provider = OpenAIProvider(base_url=server.base_url, api_key="k")
    async with OpenAIChatModel("fake", provider=provider) as model:
        yield model


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def answer(events: list[Event]) -> str:
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.text


def sse_payloads(body: str) -> list[Any]:
    lines = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


SCRIPT: list[Turn] = [
    ["Let me ", "check. ", ToolCall("echo", {"q": "x"})],
    [ToolCall("echo", {"parallel": 1}), ToolCall("echo", {"parallel": 2})],
    [ToolCall("echo", '{"broken json')],
    [ToolCall("echo", {"fail": True})],
    ["All ", "done."],
]


async def test_the_loop_yields_the_same_events_over_http_as_with_the_scripted_model() -> None:
    scripted_tool, http_tool = Echo(), Echo()
    scripted = await collect(
        astream(ask("Hi"), system_prompt="S", model=ScriptedLLM(SCRIPT), tools=[scripted_tool])
    )
    with FakeOpenAIServer(script=SCRIPT) as fake:
        async with openai_model(fake) as model:
            over_http = await collect(
                astream(ask("Hi"), system_prompt="S", model=model, tools=[http_tool])
            )

    def comparable(events: list[Event]) -> list[Event]:
        # Token counts differ (estimated vs reported); everything else must match.
        return [DoneEvent(text=e.text, rounds=e.rounds) if isinstance(e, DoneEvent) else e
                for e in events]  # fmt: skip

    assert comparable(over_http) == comparable(scripted)
    assert [e.kind for e in scripted] == [
        "text_delta", "text_delta", "tool_call", "tool_result",
        "tool_call", "tool_call", "tool_result", "tool_result",
        "tool_call", "tool_result", "tool_call", "tool_result", "text_delta", "text_delta", "done",
    ]  # fmt: skip
    assert answer(over_http) == "Let me check. All done."
    assert http_tool.calls == scripted_tool.calls
    assert sorted(str(args) for args, _ in http_tool.calls) == [
        "{'fail': True}", "{'parallel': 1}", "{'parallel': 2}", "{'q': 'x'}",
    ]  # fmt: skip
    done = over_http[-1]
    assert isinstance(done, DoneEvent) and done.usage.requests == 5
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0


async def test_a_scripted_failure_mid_turn_cuts_both_at_the_same_point() -> None:
    script: list[Turn] = [["One ", "two ", ConnectionResetError("gone"), "never"]]
    scripted = await collect(
        astream(ask("Hi"), system_prompt="", model=ScriptedLLM(script), tools=False)
    )
    with FakeOpenAIServer(script=script) as fake:
        async with openai_model(fake) as model:
            over_http = await collect(
                astream(ask("Hi"), system_prompt="", model=model, tools=False)
            )

    for events in (scripted, over_http):
        assert [e.kind for e in events] == ["text_delta", "text_delta", "error", "done"]
        assert answer(events) == "One two "
        assert isinstance(events[2], ErrorEvent) and events[2].reason == "provider_error"


async def test_a_tool_directive_calls_the_tool_then_the_answer_mentions_it(
    server: FakeOpenAIServer,
) -> None:
    tool = Echo()

    async with openai_model(server) as model:
        events = await collect(
            astream(
                ask('Please [tool:echo {"city": "Paris"}] [say:Sunny in Paris.]'),
                system_prompt="",
                model=model,
                tools=[tool],
                actor="alice",
            )
        )

    call, result = (e for e in events if isinstance(e, ToolCallEvent | ToolResultEvent))
    assert isinstance(call, ToolCallEvent)
    assert (call.name, call.arguments) == ("echo", {"city": "Paris"})
    assert result == ToolResultEvent(
        call_id=call.call_id, name="echo", content={"echo": {"city": "Paris"}}
    )
    assert tool.calls == [({"city": "Paris"}, "alice")]
    text = answer(events)
    assert text.startswith("The tool `echo` returned: ")
    assert '"city":"Paris"' in text
    assert text.endswith("Sunny in Paris.")
    assert len([e for e in events if isinstance(e, TextDeltaEvent)]) > 3


async def test_tokens_directive_sets_the_answer_length(server: FakeOpenAIServer) -> None:
    async with openai_model(server) as model:
        events = await collect(
            astream(ask("[tokens:25]"), system_prompt="", model=model, tools=False)
        )

    assert len([e for e in events if isinstance(e, TextDeltaEvent)]) == 25


async def test_an_http_500_is_a_provider_error(server: FakeOpenAIServer) -> None:
    async with openai_model(server) as model:
        events = await collect(
            astream(ask("[error:500]"), system_prompt="", model=model, tools=False)
        )

    error, done = events
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert "500" in error.message
    assert isinstance(done, DoneEvent) and done.text == ""
    assert len(server.requests) == 1  # told the SDK not to retry


async def test_a_connection_dropped_mid_stream_keeps_the_text_so_far(
    server: FakeOpenAIServer,
) -> None:
    async with openai_model(server) as model:
        events = await collect(
            astream(
                ask("[error:midstream] [say:one two three four five six]"),
                system_prompt="",
                model=model,
                tools=False,
            )
        )

    *deltas, error, done = events
    assert [e.text for e in deltas if isinstance(e, TextDeltaEvent)] == ["one ", "two ", "three "]
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert isinstance(done, DoneEvent) and done.text == "one two three "


async def test_non_streaming_requests_are_served(server: FakeOpenAIServer) -> None:
    async with openai_model(server) as model:
        title = await agenerate_text(
            ask("[say:Weekend plans]"), system_prompt="Title this.", model=model
        )

    assert title == "Weekend plans"
    assert server.requests[-1].get("stream") in (None, False)


def test_sse_chunks_carry_emit_timestamps_and_end_with_done(server: FakeOpenAIServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": "fake",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "[say:Hello there friend]"}],
        },
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(filter(None, content)) == "Hello there friend"
    assert [c for c in content if c] == ["Hello ", "there ", "friend"]
    stamps = [c["x_emit_ts"] for c in chunks]
    assert all(isinstance(s, float) for s in stamps)
    assert stamps == sorted(stamps)
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_tokens_follow_an_absolute_schedule_with_bounded_jitter() -> None:
    # Token i is due at ttft + i/tps whatever came before: a late token does not delay the next.
    assert emit_schedule(4, ttft=0.5, tps=10) == pytest.approx([0.5, 0.6, 0.7, 0.8])
    assert emit_schedule(3, ttft=0.2, tps=0) == [0.2, 0.2, 0.2]
    jittered = emit_schedule(200, ttft=0.1, tps=20, jitter=0.5, rng=random.Random(7))
    slots = [0.1 + i / 20 for i in range(200)]
    assert jittered == sorted(jittered) and jittered[0] >= 0.1
    assert all(abs(t - slot) <= 0.25 / 20 + 1e-9 for t, slot in zip(jittered, slots, strict=True))
    gaps = [b - a for a, b in itertools.pairwise(jittered)]
    assert min(gaps) < 1 / 20 < max(gaps)  # some arrive closer together than 1/tps: as users see


def test_the_timing_directives_apply_to_one_request(server: FakeOpenAIServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": "fake",
            "stream": True,
            "messages": [{"role": "user", "content": "[tps:1000] [jitter:0.5] [say:a b c]"}],
        },
    )

    content = [c["choices"][0]["delta"].get("content") for c in sse_payloads(response.text)[:-1]]
    assert "".join(filter(None, content)) == "a b c"


def test_a_streamed_tool_call_has_openai_shape(server: FakeOpenAIServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": "fake",
            "stream": True,
            "messages": [{"role": "user", "content": '[tool:search {"q": [1, "]"]}]'}],
        },
    )

    chunks = sse_payloads(response.text)[:-1]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in
             c["choices"][0]["delta"]]  # fmt: skip
    assert calls[0]["function"]["name"] == "search"
    assert calls[0]["id"].startswith("call_")
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"q": [1, "]"]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_unknown_paths_are_404(server: FakeOpenAIServer) -> None:
    assert httpx.get(f"{server.base_url}/nothing").status_code == 404
    assert httpx.get(f"{server.base_url}/models").json()["data"][0]["id"] == "fake"


def test_the_command_line_server_is_steered_by_directives() -> None:
    # The with block closes the stdout pipe as well as waiting for the process.
    with subprocess.Popen(
        [sys.executable, "-m", "django_ai_chat.testing", "--port", "0", "--tokens", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
            assert match, line
            base_url = match.group(1)
            response = httpx.post(
                f"{base_url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "Hello"}]},
            )
            content = response.json()["choices"][0]["message"]["content"]
            assert len(content.split()) == 4
            response = httpx.post(
                f"{base_url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "[error:500]"}]},
            )
            assert response.status_code == 500
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_the_demo_model_calls_the_starter_tool_then_streams_markdown() -> None:
    events = await collect(
        astream(
            ask("What can you do?"),
            system_prompt="",
            model="demo:instant",
            tools=[ListConversations(), Echo()],
        )
    )

    first = events[0]
    assert isinstance(first, ToolCallEvent) and first.name == "chat_list_conversations"
    text = answer(events)
    assert "offline demo model" in text
    assert "2 conversation(s): *Trip*, *Recipes*" in text
    assert "What can you do?" in text
    assert re.search(r"^## ", text, re.M)
    assert re.search(r"^- ", text, re.M)
    assert re.search(r"^\|.*\|$", text, re.M)
    assert "```python" in text
    deltas = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert len(deltas) > 50  # word by word


async def test_the_demo_model_answers_the_same_question_again_differently() -> None:
    question = f"Regenerate me {uuid.uuid4()}"
    first, second = [
        answer(await collect(astream(ask(question), system_prompt="", model="demo:instant")))
        for _ in range(2)
    ]
    assert "answer number" not in first
    assert "answer number 2" in second and second != first


async def test_the_demo_model_answers_directly_without_a_starter_tool() -> None:
    events = await collect(astream(ask("Hi"), system_prompt="", model="demo:instant", tools=[]))

    # It thinks visibly first (the chat's "Thinking" section), then answers.
    assert events[0] == ThinkingDeltaEvent(text="The ")
    texts = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert texts[0] == TextDeltaEvent(text="## ")
    assert "offline demo model" in answer(events)


async def test_a_scripted_model_records_requests_and_offered_tools() -> None:
    llm = ScriptedLLM([[ToolCall("echo", {"n": 1}, id="mine")], ["ok"]])

    events = await collect(astream(ask("Go"), system_prompt="", model=llm, tools=[Echo()]))

    assert [e.call_id for e in events if isinstance(e, ToolCallEvent)] == ["mine"]
    assert llm.tool_names == [["echo"], ["echo"]]
    assert len(llm.requests) == 2
    assert not llm.turns


async def test_the_scripted_llm_fixture_backs_the_test_settings_model(
    scripted_llm: ScriptedLLM, settings: Any
) -> None:
    scripted_llm.add_turns(["From ", "the fixture."])

    events = await collect(
        astream(ask("Hi"), system_prompt="", model=settings.AI_CHAT_MODEL, tools=False)
    )

    assert settings.AI_CHAT_MODEL == "test:scripted"
    assert answer(events) == "From the fixture."


def test_scripted_llm_is_not_collected_as_a_test_class() -> None:
    assert ScriptedLLM.__test__ is False
    assert FakeOpenAIServer.__test__ is False


def test_the_guard_blocks_real_hosts_and_allows_loopback(server: FakeOpenAIServer) -> None:
    with block_real_llm_requests():
        with pytest.raises(RealLLMRequestBlocked, match=r"api\.openai\.com.*FakeOpenAIServer"):
            httpx.post("https://api.openai.com/v1/chat/completions", json={})
        assert httpx.get(f"{server.base_url}/models").status_code == 200
        assert httpx.get(f"http://localhost:{server.port}/v1/models").status_code == 200


async def test_the_guard_is_active_in_every_test_and_names_itself_in_the_loop_error() -> None:
    # The root conftest enables django_ai_chat.pytest_plugin: no opt-in needed.
    async with httpx.AsyncClient() as client:
        with pytest.raises(RealLLMRequestBlocked):
            await client.get("https://example.com/")

    # No SDK retries: the blocked request would otherwise be retried with back-off.
    sdk = AsyncOpenAI(api_key="sk-real-looking", base_url="http://192.0.2.1/v1", max_retries=0)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=sdk))
    events = await collect(astream(ask("Hi"), system_prompt="", model=model, tools=False))

    error = events[0]
    assert isinstance(error, ErrorEvent) and error.reason == "provider_error"
    assert "RealLLMRequestBlocked" in error.message


async def test_an_empty_reply_over_http_is_requested_once(server: FakeOpenAIServer) -> None:
    async with openai_model(server) as model:
        events = await collect(
            astream(ask("[tokens:0]"), system_prompt="S", model=model, tools=False)
        )

    assert len(server.requests) == 1
    assert answer(events) == ""
    assert not any(isinstance(e, ErrorEvent) for e in events)


@pytest.mark.django_db
def test_make_user_fills_the_default_user_model() -> None:
    user = make_user("alice")

    assert (user.username, user.email) == ("alice", "alice@example.com")
    assert not user.has_usable_password()
    assert make_user("bob", password="s3cret", first_name="Bob").check_password("s3cret")


@pytest.mark.django_db
@override_settings(AUTH_USER_MODEL="testapp.EmailUser")
def test_make_user_fills_what_a_custom_user_model_requires() -> None:
    # USERNAME_FIELD = "email", REQUIRED_FIELDS = ["username"], a manager without create_user.
    user = make_user("alexandra")

    assert type(user).__name__ == "EmailUser"
    assert (user.email, user.username) == ("alexandra@example.com", "alexa")  # max_length 5
    assert not user.has_usable_password()
    assert make_user("bob", email="robert@example.com").email == "robert@example.com"


@pytest.mark.django_db
@override_settings(AUTH_USER_MODEL="testapp.EmailUser")
def test_make_user_asks_for_a_required_field_it_cannot_invent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.testapp.models import EmailUser

    monkeypatch.setattr(EmailUser, "REQUIRED_FIELDS", ["username", "birth_year"])
    with pytest.raises(TypeError, match=r"'birth_year'.*make_user\('alice', birth_year=\.\.\.\)"):
        make_user("alice")
    assert make_user("alice", birth_year=1990).birth_year == 1990


def test_the_kits_old_import_paths_still_work() -> None:
    # Projects written against 0.1 enable `django_ai_chat.pytest_plugin` and import `devdb`.
    from django_ai_chat import devdb, pytest_plugin
    from django_ai_chat.dev import devdb as new_devdb
    from django_ai_chat.testing import pytest_plugin as new_plugin

    assert pytest_plugin.scripted_llm is new_plugin.scripted_llm
    assert pytest_plugin.no_real_llm_requests is new_plugin.no_real_llm_requests
    assert devdb.start is new_devdb.start
