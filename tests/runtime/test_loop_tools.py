"""The loop with the real model-action tools: every call runs as the actor, on real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import connections
from pydantic_ai.messages import ModelRequest, ToolReturnPart

from django_ai_chat.events import DoneEvent, Event, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from django_ai_chat.loop import ChatMessage, astream
from django_ai_chat.testing import ScriptedLLM, ToolCall
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

ASK = [ChatMessage("user", "Which of my notes mention eggs?")]
EGGS = {"filter": [{"field": "body", "operator": "icontains", "value": "eggs"}]}


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    # The tools use the ORM in asgiref's sync thread; its connection must not outlive the test.
    yield
    await sync_to_async(connections.close_all, thread_sensitive=True)()


def _user(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def alice(transactional_db: None) -> User:
    alice = _user("alice", "view_note")
    Note.objects.create(owner=alice, title="Groceries", body="milk, eggs")
    Note.objects.create(owner=alice, title="Garden", body="tomatoes")
    return alice


@pytest.fixture
def bob(transactional_db: None) -> User:
    bob = _user("bob", "view_note", "change_note")
    Note.objects.create(owner=bob, title="Bob's secret", body="the eggs are hidden")
    return bob


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def tool_returns(llm: ScriptedLLM) -> list[Any]:
    """What the model was sent back from tools, over all its requests."""
    return [
        part.content
        for messages in llm.requests
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


async def test_streams_text_calls_a_read_tool_as_the_actor_and_streams_more(
    alice: User, bob: User
) -> None:
    llm = ScriptedLLM(
        [
            ["Let me ", "check. ", ToolCall("read_notes", EGGS)],
            ["One note: ", "Groceries."],
        ]
    )

    events = await collect(astream(ASK, system_prompt="", model=llm, tools=True, actor=alice))

    assert [type(e) for e in events] == [
        TextDeltaEvent,
        TextDeltaEvent,
        ToolCallEvent,
        ToolResultEvent,
        TextDeltaEvent,
        TextDeltaEvent,
        DoneEvent,
    ]
    call, result = events[2], events[3]
    assert isinstance(call, ToolCallEvent)
    assert (call.name, call.arguments) == ("read_notes", EGGS)
    assert isinstance(result, ToolResultEvent)
    assert not result.is_error
    # Bob's note mentions eggs too, yet only Alice's row comes back, to the UI and to the model.
    assert [row["title"] for row in result.content] == ["Groceries"]
    assert [[row["title"] for row in content] for content in tool_returns(llm)] == [["Groceries"]]
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.text == "Let me check. One note: Groceries."
    # tools=True offered only what Alice may use: reading, not writing.
    assert {"read_notes", "get_note", "note_titles"} <= set(llm.tool_names[0])
    assert not {"create_note", "update_note", "destroy_note"} & set(llm.tool_names[0])


async def test_another_users_row_comes_back_as_an_error_result(alice: User, bob: User) -> None:
    secret = await Note.objects.aget(title="Bob's secret")
    llm = ScriptedLLM(
        [
            [ToolCall("get_note", {"id": secret.pk})],
            [ToolCall("read_notes", {"filter": [{"field": "owner", "value": bob.pk}]})],
            ["I can't see that note."],
        ]
    )

    events = await collect(astream(ASK, system_prompt="", model=llm, actor=alice))

    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [r.is_error for r in results] == [True, True]
    assert f"No note with id={secret.pk}" in results[0].content
    assert "unknown field 'owner'. Valid fields are: id, title" in results[1].content
    assert "Bob's secret" not in str(tool_returns(llm))
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].text == "I can't see that note."
