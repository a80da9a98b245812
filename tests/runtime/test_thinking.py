"""Reasoning (issue 14 row 3): streamed, stored, resumed and stopped like the answer's text.

The protocol end to end on a real table (a writer streaming thinking then text, relays resuming
at every point), the responder on real rows with a scripted model that thinks, the loop reading
the fake OpenAI server's `reasoning_content`, and the AI SDK's reasoning parts.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from pydantic_ai.messages import ModelResponse, ThinkingPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from django_ai_chat import ai_sdk, pubsub, streaming
from django_ai_chat.events import DoneEvent, TextDeltaEvent, ThinkingDeltaEvent
from django_ai_chat.loop import ChatMessage, astream
from django_ai_chat.models import new_id
from django_ai_chat.streaming import AnswerWriter, Cursor, control_topic, relay, request_stop
from django_ai_chat.testing import FakeOpenAIServer, ScriptedLLM, Thinking, ToolCall, make_user
from django_ai_chat.worker import HandedOver, _handover_event
from tests.runtime.test_answers import (
    ChatResponder,
    WaitingResponder,
    answer_to,
    ask,
)
from tests.runtime.test_streaming import WAIT, Event, parse
from tests.testapp.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "thinking_test_message"


@dataclass
class Row:
    id: uuid.UUID
    text: str
    thinking: str
    complete: bool


class Rows:
    """A real table with text and thinking, written with the guarded UPDATE of the responder."""

    def __init__(self) -> None:
        self.conversation = uuid.uuid4()
        self.topic = streaming.messages_topic(self.conversation)

    async def _sql(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall()) if cursor.description else []
            finally:
                connection.close()

        return await asyncio.to_thread(run)

    async def create(self, *, text: str = "", complete: bool = False) -> uuid.UUID:
        message_id = new_id()
        await self._sql(
            f"INSERT INTO {TABLE} (id, conversation, text, thinking, complete, seq) "
            "VALUES (%s, %s, %s, '', %s, nextval('thinking_test_seq'))",
            [message_id, self.conversation, text, complete],
        )
        return message_id

    async def write(self, message_id: uuid.UUID, text: str, fields: dict[str, Any]) -> None:
        thinking = fields.get("thinking", "")
        await self._sql(
            f"UPDATE {TABLE} SET text = %s, thinking = %s, complete = %s WHERE id = %s AND NOT "
            "complete AND length(text) <= %s AND length(thinking) <= %s",
            [text, thinking, bool(fields.get("complete")), message_id, len(text), len(thinking)],
        )

    async def load_messages(self, after: str | None) -> list[Row]:
        rows = await self._sql(
            f"SELECT id, text, thinking, complete FROM {TABLE} WHERE conversation = %s "
            "AND (%s::uuid IS NULL OR id > %s::uuid OR NOT complete) ORDER BY seq",
            [self.conversation, after, after],
        )
        return [Row(*row) for row in rows]

    async def load_message(self, message_id: str) -> Row | None:
        rows = await self._sql(
            f"SELECT id, text, thinking, complete FROM {TABLE} WHERE conversation = %s AND id = %s",
            [self.conversation, message_id],
        )
        return Row(*rows[0]) if rows else None

    def writer(self, message_id: uuid.UUID, **kwargs: Any) -> AnswerWriter:
        async def flush(text: str, fields: dict[str, Any]) -> None:
            await self.write(message_id, text, fields)

        return AnswerWriter(message_id, topic=self.topic, flush=flush, **kwargs)

    def relay(self, cursor: Cursor, **kwargs: Any) -> AsyncIterator[str]:
        return relay(
            cursor=cursor,
            messages_topic=self.topic,
            load_messages=self.load_messages,
            load_message=self.load_message,
            render_message=render,
            **kwargs,
        )


async def render(row: Any) -> str:
    # As the generated template: the element names both ends (`data-end`, `data-thinking-end`).
    return (
        f'<div id="message-{row.id}" data-end="{len(row.text)}" '
        f'data-thinking-end="{len(row.thinking)}" data-complete="{str(row.complete).lower()}">'
        f"\n{json.dumps([row.thinking, row.text])}\n</div>"
    )


@pytest.fixture
def rows() -> Iterator[Rows]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE IF NOT EXISTS thinking_test_seq")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, conversation uuid NOT NULL,"
            " text text NOT NULL, thinking text NOT NULL, complete boolean NOT NULL,"
            " seq bigint NOT NULL)"
        )
    yield Rows()
    connection.close()


class Browser:
    """What chat.js does: a text and a thinking buffer per message, each checked for gaps."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.thoughts: dict[str, str] = {}
        self.complete: set[str] = set()
        self.last_event_id: str | None = None
        self.events: list[Event] = []

    def load_page(self, rows: list[Row]) -> Cursor:
        for row in rows:
            self.texts[str(row.id)] = row.text
            self.thoughts[str(row.id)] = row.thinking
            if row.complete:
                self.complete.add(str(row.id))
        partial = next((r for r in reversed(rows) if not r.complete), None)
        return Cursor(
            after=str(rows[-1].id) if rows else None,
            partial=str(partial.id) if partial else None,
            end=len(partial.text) if partial else 0,
            thinking=len(partial.thinking) if partial else 0,
        )

    def apply(self, event: Event) -> None:
        self.events.append(event)
        if event.id is not None:
            self.last_event_id = event.id
        if event.event == "message":
            match = re.match(
                r'<div id="message-([^"]+)" data-end="(\d+)" data-thinking-end="(\d+)" '
                r'data-complete="(\w+)">',
                event.data,
            )
            assert match, event.data
            message_id = match[1]
            thinking, text = json.loads(event.data.split("\n")[1])
            assert (len(text), len(thinking)) == (int(match[2]), int(match[3]))
            self.texts[message_id], self.thoughts[message_id] = text, thinking
            if match[4] == "true":
                self.complete.add(message_id)
        elif event.event in ("delta", "thinking"):
            delta = json.loads(event.data)
            buffers = self.thoughts if event.event == "thinking" else self.texts
            have = buffers.get(delta["id"])
            assert have is not None, f"{event.event} for unknown message {delta['id']}"
            assert delta["offset"] == len(have), (
                f"{event.event}: gap or duplicate, browser holds {len(have)}, got {delta['offset']}"
            )
            assert delta["id"] not in self.complete
            buffers[delta["id"]] = have + delta["text"]

    async def follow(self, stream: AsyncIterator[str], until: Any) -> None:
        try:
            async with asyncio.timeout(WAIT):
                async for chunk in stream:
                    event = parse(chunk)
                    if event is not None:
                        self.apply(event)
                    if until(self):
                        return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


THOUGHTS = [f"thought{i} " if i % 5 else f"ïdea{i}\n\n" for i in range(80)]
WORDS = [f"word{i} " for i in range(40)]


async def test_a_reload_mid_thought_gets_exactly_the_thinking_so_far_then_the_rest(
    rows: Rows,
) -> None:
    """Browsers (re)connecting while the model thinks, or answers, end with both texts exact."""
    answer_id = await rows.create()
    mid_thought = asyncio.Event()

    async def worker() -> None:
        async with rows.writer(answer_id) as writer:
            for i, thought in enumerate(THOUGHTS):
                await writer.append_thinking(thought)
                if i == 30:
                    mid_thought.set()
                await asyncio.sleep(0.002)
            for word in WORDS:
                await writer.append(word)
                await asyncio.sleep(0.002)
            await writer.finish(complete=True)

    def done(browser: Browser) -> bool:
        return str(answer_id) in browser.complete

    async def reload_after(delay: float) -> Browser:
        await mid_thought.wait()
        await asyncio.sleep(delay)
        browser = Browser()
        cursor = browser.load_page(await rows.load_messages(None))
        await browser.follow(rows.relay(cursor, coalesce=True), done)
        return browser

    async def drops_mid_thought_and_resumes() -> Browser:
        browser = Browser()
        cursor = browser.load_page(await rows.load_messages(None))
        await browser.follow(rows.relay(cursor), lambda b: len(b.thoughts[str(answer_id)]) > 60)
        resumed = Cursor.parse(browser.last_event_id)
        assert resumed is not None and resumed.partial == str(answer_id)
        assert resumed.thinking == len(browser.thoughts[str(answer_id)]) > 60
        await browser.follow(rows.relay(resumed), done)
        return browser

    task = asyncio.create_task(worker())
    browsers = await asyncio.gather(
        reload_after(0), reload_after(0.05), reload_after(0.2), drops_mid_thought_and_resumes()
    )
    await task
    for browser in browsers:
        assert browser.thoughts[str(answer_id)] == "".join(THOUGHTS)
        assert browser.texts[str(answer_id)] == "".join(WORDS)
    stored = await rows.load_message(str(answer_id))
    assert stored is not None and (stored.thinking, stored.text) == (
        "".join(THOUGHTS),
        "".join(WORDS),
    )
    assert any(e.event == "thinking" for e in browsers[-1].events)


async def test_a_sync_flushes_the_thinking_and_says_how_much(rows: Rows) -> None:
    answer_id = await rows.create()
    async with (
        rows.writer(answer_id) as writer,
        pubsub.subscribe(rows.topic) as events,
    ):
        await writer.append_thinking("Hmm, ")
        await writer.append_thinking("let me see.")
        await pubsub.apublish(control_topic(rows.topic), {"type": "sync", "id": str(answer_id)})
        async with asyncio.timeout(WAIT):
            async for _topic, payload in events:
                if payload["type"] == "flushed":
                    break
        assert payload == {"type": "flushed", "id": str(answer_id), "end": 0, "thinking": 16}
        stored = await rows.load_message(str(answer_id))
        assert stored is not None and stored.thinking == "Hmm, let me see."
        await writer.finish(complete=True)


async def test_relay_repairs_a_gap_in_the_thinking_from_the_row(rows: Rows) -> None:
    answer_id = await rows.create()
    await rows.write(answer_id, "", {"thinking": "First. "})
    browser = Browser()
    cursor = browser.load_page(await rows.load_messages(None))
    stream = rows.relay(cursor, sync_timeout=0.1)

    async def lose_one_and_send_the_next() -> None:
        await asyncio.sleep(0.3)
        # "Second. " reached the row but its delta was lost; the next delta names offset 15.
        await rows.write(answer_id, "", {"thinking": "First. Second. "})
        await pubsub.apublish(rows.topic, streaming.protocol.thinking(answer_id, 15, "Third."))

    sender = asyncio.create_task(lose_one_and_send_the_next())
    await browser.follow(stream, lambda b: b.thoughts[str(answer_id)].endswith("Third."))
    await sender
    assert browser.thoughts[str(answer_id)] == "First. Second. Third."


def test_the_cursor_carries_the_thinking_held_and_reads_older_forms() -> None:
    partial = str(new_id())
    cursor = Cursor(after=partial, partial=partial, end=12, thinking=40)
    assert str(cursor) == f"{partial}/{partial}:12:40"
    assert Cursor.parse(str(cursor)) == cursor
    assert Cursor.parse(f"{partial}/{partial}:12") == Cursor(partial, partial, 12)
    assert str(Cursor(partial, partial, 12)) == f"{partial}/{partial}:12"
    query = {"after": partial, "partial": partial, "end": "3", "thinking": "9"}
    assert Cursor.from_query(query).thinking == 9
    assert Cursor.from_query({**query, "thinking": "x"}) == Cursor()


# -- the responder ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def alice() -> Any:
    return await sync_to_async(make_user)("alice")


responder = ChatResponder()


async def thinking_until_the_end(events: pubsub.Subscription) -> list[dict[str, Any]]:
    """The `thinking` payloads received up to the answer's last write (`flushed`, `message`).

    Delivery runs behind the publisher: what `drain()` holds when the answer returns may lack
    the end (it did under load), so this waits for the final `message` after a `flushed`.
    """
    thinking: list[dict[str, Any]] = []
    flushed = False
    async with asyncio.timeout(WAIT):
        async for _topic, payload in events:
            if payload["type"] == "thinking":
                thinking.append(payload)
            elif payload["type"] == "flushed":
                flushed = True
            elif payload["type"] == "message" and flushed:
                return thinking
    raise AssertionError("the subscription ended before the answer's last write")


async def test_the_thinking_is_stored_timed_and_kept_out_of_the_next_request(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns(
        [Thinking("The person "), Thinking("says hi."), "Hello!"],
        ["Again."],
    )
    question = await ask(alice, "Hi")
    topic = streaming.messages_topic(question.conversation_id)
    async with pubsub.subscribe(topic) as events:
        await responder.respond(question.pk, actor=alice)
        thinking = await thinking_until_the_end(events)
    answer = await answer_to(question)
    assert (answer.thinking, answer.text, answer.complete) == (
        "The person says hi.",
        "Hello!",
        True,
    )
    assert answer.thinking_seconds is not None and answer.thinking_seconds >= 0
    assert "".join(p["text"] for p in thinking) == "The person says hi."
    assert thinking[0]["offset"] == 0

    conversation = await sync_to_async(lambda: question.conversation)()
    follow_up = await ask(alice, "More", conversation=conversation)
    await responder.respond(follow_up.pk, actor=alice)
    sent = scripted_llm.requests[-1]
    assert not any(isinstance(p, ThinkingPart) for m in sent for p in getattr(m, "parts", []))
    assert any(
        isinstance(m, ModelResponse) and "Hello!" in str(m.parts) for m in sent
    )  # the answer's text is the history; its reasoning is not


async def test_rounds_of_thinking_around_a_tool_are_kept_apart(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    from django_ai_chat.tools import registry, tool

    @tool(name="thinking_test_lookup")
    def lookup() -> str:
        """Look it up."""
        return "42"

    registry.register(lookup)
    try:
        scripted_llm.add_turns(
            [Thinking("I need the number."), ToolCall("thinking_test_lookup", {})],
            [Thinking("It is 42."), "42."],
        )
        question = await ask(alice, "Number?")
        await responder.respond(question.pk, actor=alice)
    finally:
        registry.unregister("thinking_test_lookup")
    answer = await answer_to(question)
    assert answer.thinking == "I need the number.\n\nIt is 42."
    assert answer.text == "42."


async def test_a_stop_mid_thought_keeps_the_thinking(scripted_llm: ScriptedLLM, alice: Any) -> None:
    scripted_llm.add_turns([Thinking("Let me check first."), ToolCall("wait", {})])
    question = await ask(alice)
    waiting = WaitingResponder()
    run = asyncio.create_task(waiting.respond(question.pk, actor=alice))
    async with asyncio.timeout(WAIT):
        await waiting.tool.called.wait()
    running = await answer_to(question)

    await sync_to_async(request_stop)(
        streaming.messages_topic(question.conversation_id), running.pk
    )
    async with asyncio.timeout(WAIT):
        await run

    answer = await answer_to(question)
    assert (answer.thinking, answer.complete, answer.stopped) == ("Let me check first.", True, True)


async def test_a_handover_mid_thought_keeps_it_and_the_resumed_run_appends(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns([Thinking("Let me check first."), ToolCall("wait", {})])
    question = await ask(alice)
    waiting = WaitingResponder()
    run = asyncio.create_task(waiting.respond(question.pk, actor=alice))
    async with asyncio.timeout(WAIT):
        await waiting.tool.called.wait()

    _handover_event().set()
    try:
        with pytest.raises(HandedOver):
            await run
    finally:
        _handover_event().clear()
    handed = await answer_to(question)
    assert (handed.thinking, handed.complete) == ("Let me check first.", False)

    scripted_llm.add_turns([Thinking("Checked."), "Done."])
    async with pubsub.subscribe(streaming.messages_topic(question.conversation_id)) as events:
        await responder.resume(question.pk, handed.pk, actor=alice)
        thinking = await thinking_until_the_end(events)
    resumed = await answer_to(question)
    assert resumed.thinking == "Let me check first.\n\nChecked."
    assert (resumed.text, resumed.complete) == ("Done.", True)
    # Appended at the row's offset: a page that showed the first thought gets no duplicate.
    assert thinking[0]["offset"] == len("Let me check first.")


# -- the loop and the fake OpenAI server ----------------------------------------------------------


async def test_the_fake_server_streams_reasoning_content_pydantic_ai_reads_as_thinking() -> None:
    with FakeOpenAIServer() as server:
        # Closed at the end: its pooled connection must not outlive the test's loop.
        async with OpenAIChatModel(
            "fake", provider=OpenAIProvider(base_url=server.base_url, api_key="x")
        ) as model:
            events = [
                e
                async for e in astream(
                    [ChatMessage("user", "[think:12] [say:The answer.]")],
                    system_prompt="",
                    model=model,
                    tools=False,
                )
            ]
            usage = server.usages[-1]
    thoughts = [e.text for e in events if isinstance(e, ThinkingDeltaEvent)]
    texts = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert len(thoughts) == 12 and "".join(thoughts).startswith("The person wants")
    assert "".join(texts) == "The answer."
    # Every thought before the first word of the answer, as a reasoning model streams them.
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDeltaEvent))
    last_thought = max(i for i, e in enumerate(events) if isinstance(e, ThinkingDeltaEvent))
    assert last_thought < first_text
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 12
    assert done.usage.reasoning_tokens == 12


async def test_the_fake_server_thinks_on_the_absolute_schedule() -> None:
    with FakeOpenAIServer(tps=200) as server:
        # Closed at the end: its pooled connection must not outlive the test's loop.
        async with OpenAIChatModel(
            "fake", provider=OpenAIProvider(base_url=server.base_url, api_key="x")
        ) as model:
            loop = asyncio.get_running_loop()
            started = loop.time()
            async for _event in astream(
                [ChatMessage("user", "[think:40] [tokens:40]")],
                system_prompt="",
                model=model,
                tools=False,
            ):
                pass
            elapsed = loop.time() - started
    # 80 tokens at 200/s: at least 0.39 s (the last token's slot); no upper bound on a busy box.
    assert elapsed >= 0.39


async def test_the_scripted_model_and_the_demo_model_think() -> None:
    llm = ScriptedLLM([[Thinking("Hmm. "), Thinking("Yes."), "Hi!"]])
    events = [e async for e in astream([ChatMessage("user", "Hi")], system_prompt="", model=llm)]
    assert [e.text for e in events if isinstance(e, ThinkingDeltaEvent)] == ["Hmm. ", "Yes."]
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Hi!"

    demo = [
        e
        async for e in astream(
            [ChatMessage("user", "Hello")], system_prompt="", model="demo:instant", tools=False
        )
    ]
    thought = "".join(e.text for e in demo if isinstance(e, ThinkingDeltaEvent))
    assert thought.startswith('The person wrote "Hello".')
    first_text = next(i for i, e in enumerate(demo) if isinstance(e, TextDeltaEvent))
    assert all(not isinstance(e, ThinkingDeltaEvent) for e in demo[first_text:])


# -- the AI SDK stream ---------------------------------------------------------------------------


@dataclass
class SdkRow:
    id: str
    text: str
    thinking: str
    complete: bool
    source: str = "agent"
    stopped: bool = False
    error: str = ""
    tool_calls: Any = ()
    tool_results: Any = ()


def test_the_ai_sdk_stream_sends_reasoning_parts_before_the_text() -> None:
    state = ai_sdk.AnswerChunks("a1")
    thinking = SdkRow("a1", "", "Let me", complete=False)
    out = state.row(thinking)
    out += state.thinking_delta(6, " think.") or []
    out += state.delta(0, "Hi") or []
    out += state.row(SdkRow("a1", "Hi there", "Let me think.", complete=True))
    kinds = [c.type for c in out]
    assert kinds == [
        "reasoning-start",
        "reasoning-delta",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "finish",
    ]
    reasoning = "".join(getattr(c, "delta", "") for c in out if c.type == "reasoning-delta")
    assert reasoning == "Let me think."
    message = ai_sdk.ui_message(SdkRow("a1", "Hi there", "Let me think.", complete=True))
    assert message["parts"][0] == {"type": "reasoning", "text": "Let me think.", "state": "done"}
    assert message["parts"][1]["type"] == "text"
    # A row without reasoning (an app generated before it) has no reasoning part.
    plain = ai_sdk.ui_message(SdkRow("a2", "Hi", "", complete=True))
    assert [p["type"] for p in plain["parts"]] == ["text"]


def test_message_model_has_the_fields() -> None:
    fields = {f.name for f in Message._meta.get_fields()}
    assert {"thinking", "thinking_seconds"} <= fields
