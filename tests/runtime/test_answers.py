"""`Responder` through its entry points, on real rows (`tests.testapp`) and a scripted model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.test import override_settings
from django.utils import timezone
from pydantic_ai.messages import ModelRequest

from django_ai_chat import pubsub
from django_ai_chat.answers import Responder
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.loop import ChatMessage, ToolsArg
from django_ai_chat.models import TITLE_MAX_LENGTH, AbstractConversation, AbstractMessage
from django_ai_chat.streaming import conversations_topic, messages_topic, request_stop
from django_ai_chat.testing import (
    ScriptedLLM,
    ToolCall,
    make_user,
    register_model,
    unregister_model,
)
from django_ai_chat.worker import HandedOver, _handover_event
from tests.testapp.models import Conversation, Message, Note

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for an event to arrive; never a speed assertion
USER, AGENT = Message.Source.USER, Message.Source.AGENT


class ChatResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    model = "test:scripted"
    system_prompt = "Be brief."


responder = ChatResponder()


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    # The ORM runs in asgiref's sync thread; its connection must not outlive the test.
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def alice() -> Any:
    return await sync_to_async(make_user)("alice")


async def ask(actor: Any, text: str = "Hi", conversation: Conversation | None = None) -> Message:
    """A user message of `actor` (in a new conversation unless one is given)."""
    if conversation is None:
        conversation = await Conversation.objects.acreate(user=actor)
    return await Message.objects.acreate(conversation=conversation, text=text)


async def answer_to(question: Message) -> Message:
    return await Message.objects.aget(response_to=question)


def instructions(llm: ScriptedLLM, request: int = -1) -> str | None:
    """The system prompt (pydantic-ai's instructions) of one model request."""
    last = llm.requests[request][-1]
    assert isinstance(last, ModelRequest)
    return last.instructions


async def test_streams_a_complete_answer_and_tells_the_pages(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns(["Hello", ", ", "world!"])
    question = await ask(alice)
    cid = question.conversation_id
    topics = (messages_topic(cid), conversations_topic(alice.pk))

    async with pubsub.subscribe(*topics) as subscription:
        await responder.respond(question.pk, actor=alice)
        answer = await answer_to(question)
        seen: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(WAIT):
            async for topic, payload in subscription:
                seen.append((topic, {k: v for k, v in payload.items() if k != "text"}))
                if payload["type"] == "conversation":
                    break

    assert (answer.text, answer.source, answer.complete) == ("Hello, world!", AGENT, True)
    assert (answer.error, answer.stopped, answer.tool_calls) == ("", False, [])
    assert (topics[0], {"type": "message", "id": str(answer.pk)}) in seen
    assert seen[-1] == (topics[1], {"type": "conversation", "id": str(cid), "event": "updated"})
    assert instructions(scripted_llm) == "Be brief."


async def test_records_tool_calls_and_keeps_the_rounds_apart(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    await Note.objects.acreate(owner=alice, title="Eggs")
    scripted_llm.add_turns(["Let me look.", ToolCall("note_titles", {})], ["You have one note."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await answer_to(question)
    assert answer.text == "Let me look.\n\nYou have one note."
    assert [c["name"] for c in answer.tool_calls] == ["note_titles"]
    (result,) = answer.tool_results
    assert (result["name"], result["content"], result["is_error"]) == (
        "note_titles",
        ["Eggs"],
        False,
    )


async def test_tool_calls_without_text_say_so(scripted_llm: ScriptedLLM, alice: Any) -> None:
    scripted_llm.add_turns([ToolCall("note_titles", {})], [])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await answer_to(question)
    assert (answer.text, answer.error) == (responder.tool_only_text, "")


async def test_an_empty_reply_is_one_clear_error(scripted_llm: ScriptedLLM, alice: Any) -> None:
    scripted_llm.add_turns([])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await answer_to(question)
    assert (answer.text, answer.complete, answer.error) == ("", True, responder.empty_text)
    assert len(scripted_llm.requests) == 1


async def test_a_provider_error_keeps_the_text_and_says_so(
    scripted_llm: ScriptedLLM, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scripted_llm.add_turns(["Partial", RuntimeError("provider down")])
    question = await ask(alice)

    with caplog.at_level(logging.WARNING, logger="django_ai_chat.answers"):
        await responder.respond(question.pk, actor=alice)

    answer = await answer_to(question)
    assert (answer.text, answer.complete, answer.error) == ("Partial", True, responder.error_text)
    assert "provider down" in caplog.text


@override_settings(AI_CHAT_MAX_ROUNDS=1)
async def test_exhausted_rounds_finish_with_the_limit_text(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns([ToolCall("note_titles", {})])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    assert (await answer_to(question)).error == responder.limit_text


async def test_characters_the_database_cannot_store_are_replaced(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns(["Hello\x00", ToolCall("note_titles", {"status": "\x00"})], ["Done."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await answer_to(question)
    assert (answer.text, answer.error) == ("Hello\ufffd\n\nDone.", "")
    assert answer.tool_calls[0]["arguments"] == {"status": "\ufffd"}


async def test_a_retry_removes_the_dead_runs_answer_and_names_it(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    # Issue 11 item 4: the announcement of the removed row used its pk after `delete()` (None),
    # so open pages were told about message "None" and kept a ghost "Responding…" bubble.
    scripted_llm.add_turns(["Second try."])
    question = await ask(alice)
    stale = await Message.objects.acreate_answer(question, text="Half an ans", complete=False)
    assert stale is not None
    stale_id = stale.pk

    async with pubsub.subscribe(messages_topic(question.conversation_id)) as subscription:
        await responder.respond(question.pk, actor=alice)
        async with asyncio.timeout(WAIT):
            _, first = await anext(subscription)

    assert first == {"type": "message", "id": str(stale_id)}
    assert not await Message.objects.filter(pk=stale_id).aexists()
    assert (await answer_to(question)).text == "Second try."


@pytest.mark.parametrize("who", ["mallory", "anonymous", "nobody"])
async def test_refuses_to_answer_as_someone_else(
    scripted_llm: ScriptedLLM, alice: Any, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    question = await ask(alice)
    actor = {
        "mallory": await sync_to_async(make_user)("mallory"),
        "anonymous": AnonymousUser(),
        "nobody": None,
    }[who]

    await responder.respond(question.pk, actor=actor)

    assert scripted_llm.requests == []
    assert not await Message.objects.filter(response_to=question).aexists()
    assert "Refusing to answer" in caplog.text


async def test_no_user_mode_answers_anyone(
    scripted_llm: ScriptedLLM, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conversation, "owner_field", None)
    scripted_llm.add_turns(["Shared."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=None)

    assert (await answer_to(question)).text == "Shared."


async def test_an_answered_stopped_or_deleted_question_is_left_alone(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    stopped = await ask(alice)
    await Message.objects.acreate_answer(stopped, stopped=True)
    gone = await ask(alice)
    gone_id = gone.pk
    await gone.adelete()

    await responder.respond(stopped.pk, actor=alice)
    await responder.respond(gone_id, actor=alice)

    assert scripted_llm.requests == []
    assert (await answer_to(stopped)).stopped


async def test_history_is_the_conversation_up_to_the_question(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    first = await ask(alice, "First question")
    conversation = await Conversation.objects.aget(pk=first.conversation_id)
    await Message.objects.acreate_answer(first, text="First answer.")
    second = await ask(alice, "Second question", conversation)
    await ask(alice, "Sent while the second waited", conversation)
    await Message.objects.acreate_answer(second, text="Unfinished", complete=False)

    assert await responder.history(second) == [
        ChatMessage("user", "First question"),
        ChatMessage("assistant", "First answer."),
        ChatMessage("user", "Second question"),
    ]

    class Short(ChatResponder):
        history_limit = 2

    # The limit cuts the first answer's question off: the history still starts with a user turn.
    assert await Short().history(second) == [ChatMessage("user", "Second question")]


async def test_steps_can_be_overridden(scripted_llm: ScriptedLLM, alice: Any) -> None:
    class Custom(ChatResponder):
        error_text = "Sorry."

        def get_system_prompt(self, conversation: AbstractConversation, actor: Any) -> str:
            return f"You help {actor.username}."

        def get_tools(self, conversation: AbstractConversation, actor: Any) -> list[str]:
            return ["note_titles"]

        async def history(self, question: AbstractMessage) -> list[ChatMessage]:
            return [ChatMessage("user", "Only this.")]

    scripted_llm.add_turns(["Fine", RuntimeError("boom")])
    question = await ask(alice, "Ignored")

    await Custom().respond(question.pk, actor=alice)

    assert instructions(scripted_llm) == "You help alice."
    assert scripted_llm.tool_names == [["note_titles"]]
    assert "Ignored" not in str(scripted_llm.requests) and "Only this." in str(
        scripted_llm.requests
    )
    assert (await answer_to(question)).error == "Sorry."


def test_a_responder_without_its_models_says_which_is_missing() -> None:
    class Incomplete(Responder):
        conversation_model = Conversation

    with pytest.raises(ConfigurationError, match=r"Incomplete\.message_model must be a subclass"):
        Incomplete()


def test_the_setting_wins_over_the_model_attribute(settings: Any) -> None:
    assert responder.get_model() == "test:scripted"
    settings.AI_CHAT_MODEL = "openai:gpt-4o"
    assert responder.get_model() == "openai:gpt-4o"
    del settings.AI_CHAT_MODEL
    assert ai_chat_settings.MODEL is None
    responder_with_own_model = type("Own", (ChatResponder,), {"model": "anthropic:claude"})()
    assert responder_with_own_model.get_model() == "anthropic:claude"
    with pytest.raises(ConfigurationError, match="set its `model` attribute"):
        type("NoModel", (ChatResponder,), {"model": ""})().get_model()


async def test_finish_interrupted_completes_or_creates_the_answer(alice: Any) -> None:
    running = await ask(alice)
    await Message.objects.acreate_answer(running, text="Half an ans", complete=False)
    waiting = await ask(alice)

    await responder.finish_interrupted(running.pk)
    await responder.finish_interrupted(waiting.pk, error=responder.error_text)
    await responder.finish_interrupted(running.pk, error="ignored: already complete")

    answer = await answer_to(running)
    assert (answer.text, answer.complete, answer.error) == (
        "Half an ans",
        True,
        responder.interrupted_text,
    )
    answer = await answer_to(waiting)
    assert (answer.text, answer.complete, answer.error) == ("", True, responder.error_text)


async def conversation_to_name(owner: Any) -> Conversation:
    conversation = await Conversation.objects.acreate(user=owner)
    for text, source in (("Plan a trip to Paris", USER), ("Sure!", AGENT)) * 2:
        await Message.objects.acreate(conversation=conversation, text=text, source=source)
    return conversation


async def title_after(conversation: Conversation, run: Callable[[], Any]) -> str:
    await run()
    return (await Conversation.objects.aget(pk=conversation.pk)).title


async def test_name_conversation_sets_a_clean_title(scripted_llm: ScriptedLLM, alice: Any) -> None:
    conversation = await conversation_to_name(alice)
    scripted_llm.add_turns(['  "Title: Paris\x00 Trip\u202e in\u200b May"\n'])

    async with pubsub.subscribe(conversations_topic(alice.pk)) as subscription:
        title = await title_after(
            conversation, lambda: responder.name_conversation(conversation.pk)
        )
        async with asyncio.timeout(WAIT):
            _, payload = await anext(subscription)

    assert title == "Paris Trip in May"
    assert payload == {"type": "conversation", "id": str(conversation.pk), "event": "updated"}
    assert "Plan a trip to Paris" in str(scripted_llm.requests[0])


async def test_a_failing_title_model_falls_back_to_the_first_words(
    scripted_llm: ScriptedLLM, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conversation = await conversation_to_name(alice)
    scripted_llm.add_turns([RuntimeError("provider down")])

    title = await title_after(conversation, lambda: responder.name_conversation(conversation.pk))

    assert title == "Plan a trip to Paris"
    assert "Naming" in caplog.text


async def test_a_conversation_not_needing_a_title_is_left_alone(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    locked = await conversation_to_name(alice)
    await Conversation.objects.filter(pk=locked.pk).aupdate(title_locked=True)
    young = await Conversation.objects.acreate(user=alice)
    await ask(alice, "Only one message", young)
    await Conversation.objects.filter(pk=young.pk).aupdate(
        inserted_at=timezone.now() - timedelta(hours=1)
    )

    assert await title_after(locked, lambda: responder.name_conversation(locked.pk)) == ""
    assert await title_after(young, lambda: responder.name_conversation(young.pk)) == ""
    assert scripted_llm.requests == []


@pytest.mark.parametrize(
    ("said", "title"),
    [
        ("Weekend plans", "Weekend plans"),
        ("**Name: 'Weekend plans'.**", "Weekend plans"),
        ("Line\nbreaks\tand   spaces", "Line breaks and spaces"),
        ("\u200b\u202e", ""),
    ],
)
def test_clean_title(said: str, title: str) -> None:
    assert responder.clean_title(said) == title


def test_a_long_title_is_cut_at_a_word() -> None:
    title = responder.clean_title("wordy " * 40)

    assert len(title) <= TITLE_MAX_LENGTH
    assert title.endswith("y…") and set(title[:-1].split()) == {"wordy"}


@dataclass
class Waiting:
    """A tool that blocks until the test lets it go: an answer caught mid-run."""

    called: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "wait"
    description: str = "Wait."
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        self.called.set()
        await asyncio.Event().wait()


class WaitingResponder(ChatResponder):
    def __init__(self) -> None:
        super().__init__()
        self.tool = Waiting()

    def get_tools(self, conversation: AbstractConversation, actor: Any) -> ToolsArg:
        return [self.tool]


async def start_waiting_answer(
    scripted_llm: ScriptedLLM, actor: Any
) -> tuple[WaitingResponder, Message, asyncio.Task[None]]:
    scripted_llm.add_turns(["Working on it.", ToolCall("wait", {})])
    question = await ask(actor)
    waiting = WaitingResponder()
    run = asyncio.create_task(waiting.respond(question.pk, actor=actor))
    async with asyncio.timeout(WAIT):
        await waiting.tool.called.wait()
    return waiting, question, run


async def test_a_cancelled_run_keeps_its_text_and_says_it_was_interrupted(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    # A worker shutting down cancels its jobs: the answer must not stay "Responding…".
    _, question, run = await start_waiting_answer(scripted_llm, alice)

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    answer = await answer_to(question)
    assert (answer.text, answer.complete) == ("Working on it.", True)
    assert answer.error == responder.interrupted_text
    assert [c["name"] for c in answer.tool_calls] == ["wait"]


async def test_a_stop_request_ends_the_run_with_the_text_so_far(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _, question, run = await start_waiting_answer(scripted_llm, alice)
    running = await answer_to(question)

    await sync_to_async(request_stop)(messages_topic(question.conversation_id), running.pk)
    async with asyncio.timeout(WAIT):
        await run

    answer = await answer_to(question)
    assert (answer.text, answer.complete, answer.stopped) == ("Working on it.", True, True)
    assert answer.error == ""


async def test_a_handover_saves_the_text_so_far_and_leaves_the_answer_open(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    # A stopping worker hands over: the row must hold what the pages were shown.
    _, question, run = await start_waiting_answer(scripted_llm, alice)

    _handover_event().set()
    with pytest.raises(HandedOver) as handed_over:
        await run

    answer = await answer_to(question)
    assert handed_over.value.message_id == str(answer.pk)
    assert (answer.text, answer.complete, answer.error) == ("Working on it.", False, "")
    assert [c["name"] for c in answer.tool_calls] == ["wait"]


async def test_resume_goes_on_from_the_saved_text_and_keeps_the_tool_calls(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question = await ask(alice, "Tell me")
    calls = [{"id": "call_1", "name": "wait", "arguments": {}}]
    answer = await Message.objects.acreate(
        conversation_id=question.conversation_id,
        source=AGENT,
        response_to=question,
        text="The first half,",
        tool_calls=calls,
        complete=False,
    )
    scripted_llm.add_turns([" the second half."])
    async with pubsub.subscribe(messages_topic(question.conversation_id)) as subscription:
        await responder.resume(question.pk, answer.pk, actor=alice)
        async with asyncio.timeout(WAIT):
            async for _topic, payload in subscription:
                if payload["type"] == "delta":
                    delta = payload
                    break

    resumed = await answer_to(question)
    assert resumed.pk == answer.pk
    assert (resumed.text, resumed.complete, resumed.error) == (
        "The first half, the second half.",
        True,
        "",
    )
    assert resumed.tool_calls == calls
    assert (delta["offset"], delta["text"]) == (len("The first half,"), " the second half.")
    # The model saw the text so far, then the request to go on.
    sent = [m.content for m in scripted_llm.requests[-1] for m in getattr(m, "parts", [])]
    assert "The first half," in sent
    assert sent[-1] == responder.continue_prompt


async def test_resume_leaves_a_finished_answer_alone(scripted_llm: ScriptedLLM, alice: Any) -> None:
    question = await ask(alice)
    answer = await Message.objects.acreate(
        conversation_id=question.conversation_id,
        source=AGENT,
        response_to=question,
        text="Stopped here",
        stopped=True,
        complete=True,
    )
    await responder.resume(question.pk, answer.pk, actor=alice)
    assert (await answer_to(question)).text == "Stopped here"
    assert scripted_llm.requests == []


async def test_a_conversation_is_answered_by_the_model_it_chose_while_it_is_allowed(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    register_model("other", ScriptedLLM([["From the other model."]]))
    try:
        scripted_llm.add_turns(["From the default model."])
        question = await ask(alice)
        conversation = await Conversation.objects.aget(pk=question.conversation_id)
        conversation.ai_model = "test:other"
        await conversation.asave()
        offered = {"test:scripted": "Default", "test:other": "Other"}
        with override_settings(AI_CHAT_MODELS=offered):
            await responder.respond(question.pk, actor=alice)
        assert (await answer_to(question)).text == "From the other model."

        # Once the setting no longer offers it, the responder's model answers.
        second = await ask(alice, "Again", conversation=conversation)
        await responder.respond(second.pk, actor=alice)
        assert (await answer_to(second)).text == "From the default model."
    finally:
        unregister_model("other")


def test_get_models_reads_the_setting_in_every_shape() -> None:
    assert responder.get_models() == [("test:scripted", "test:scripted")]
    with override_settings(AI_CHAT_MODELS=["a:x", ("b:y", "Y")]):
        assert responder.get_models() == [("a:x", "a:x"), ("b:y", "Y")]
    with override_settings(AI_CHAT_MODELS={"a:x": "X", "b:y": "Y"}):
        assert responder.get_models() == [("a:x", "X"), ("b:y", "Y")]
    with override_settings(AI_CHAT_MODELS=[1]), pytest.raises(ConfigurationError) as refused:
        responder.get_models()
    assert "AI_CHAT_MODELS holds 1" in str(refused.value)
