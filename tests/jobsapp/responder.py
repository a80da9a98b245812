"""A responder that records what the jobs ask of it, in place of a model."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.testapp.models import Conversation, Message


class FakeResponder:
    """Answers with a fixed text; names a conversation in one recorded "model call".

    Attributes:
        answered: `(message_id, actor)` of every `respond` call.
        interrupted: `(message_id, error)` of every `finish_interrupted` call.
        title_calls: Conversation ids of the naming model calls.
        failures: `respond` raises this many times before it answers.
        title_gate: When set, a naming call waits for it (a model that takes its time).
        answer_gate: When set, an answer waits for it.
    """

    error_text = "Sorry, no answer this time."
    conversation_model = Conversation
    message_model = Message

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.answered: list[tuple[str, Any]] = []
        self.interrupted: list[tuple[str, str | None]] = []
        self.title_calls: list[str] = []
        self.failures = 0
        self.title_gate: asyncio.Event | None = None
        self.answer_gate: asyncio.Event | None = None

    def get_model(self) -> str:
        return "test:scripted"

    async def respond(self, message_id: str, *, actor: Any) -> None:
        self.answered.append((message_id, actor))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("scripted failure")
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        question = await Message.objects.aget(pk=message_id)
        await Message.objects.acreate(
            conversation_id=question.conversation_id,
            source=Message.Source.AGENT,
            response_to=question,
            text="An answer.",
        )

    async def finish_interrupted(self, message_id: str, *, error: str | None = None) -> None:
        self.interrupted.append((message_id, error))

    async def name_conversation(self, conversation_id: str) -> None:
        untitled = Conversation.objects.filter(pk=conversation_id, title="", title_locked=False)
        if not await untitled.aexists():
            return
        self.title_calls.append(conversation_id)
        if self.title_gate is not None:
            await self.title_gate.wait()
        await untitled.aupdate(title="A title")


responder = FakeResponder()
