"""Long histories: older turns summarised by a job, the summary sent in their place.

`Responder.summarize` / `history` on real rows (`tests.testapp`) with a scripted model, and the
`<app>.summarize` job run by a real procrastinate worker behind a real answer job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from procrastinate.contrib.django.models import ProcrastinateJob
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart

from django_ai_chat import pubsub
from django_ai_chat.answers import SUMMARY_PROMPT, Responder
from django_ai_chat.jobs import ChatJobs
from django_ai_chat.loop import ChatMessage
from django_ai_chat.streaming import messages_topic
from django_ai_chat.testing import ScriptedLLM, make_user
from django_ai_chat.worker import Workers
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to happen; never a speed assertion
USER, AGENT = Message.Source.USER, Message.Source.AGENT
T = TypeVar("T")


class LongResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    model = "test:scripted"
    system_prompt = "Be brief."
    history_budget = 100  # estimated tokens: 400 characters


responder = LongResponder()
summary_jobs = ChatJobs("summaries", responder)


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def alice() -> Any:
    return await sync_to_async(make_user)("alice")


async def exchange(
    conversation: Conversation, number: int, *, size: int = 100
) -> tuple[Message, Message]:
    """One question and its answer, each `size` characters (25 estimated tokens)."""
    question = await Message.objects.acreate(
        conversation=conversation, text=f"Q{number} ".ljust(size, "q")
    )
    answer = await Message.objects.acreate_answer(question, text=f"A{number} ".ljust(size, "a"))
    assert answer is not None
    return question, answer


async def long_conversation(actor: Any, exchanges: int = 4) -> tuple[Conversation, list[Message]]:
    """A conversation of `exchanges` exchanges (800 characters for 4: twice the budget)."""
    # Titled: no naming job takes the scripted model's turns.
    conversation = await Conversation.objects.acreate(user=actor, title="Long")
    rows: list[Message] = []
    for number in range(1, exchanges + 1):
        rows.extend(await exchange(conversation, number))
    return conversation, rows


def sent(request: list[ModelMessage]) -> list[tuple[str, str]]:
    """A model request's turns as `(role, text)`."""
    turns: list[tuple[str, str]] = []
    for message in request:
        if isinstance(message, ModelRequest):
            turns += [
                ("user", str(p.content)) for p in message.parts if isinstance(p, UserPromptPart)
            ]
        elif isinstance(message, ModelResponse):
            turns += [("assistant", p.content) for p in message.parts if isinstance(p, TextPart)]
    return turns


def instructions(request: list[ModelMessage]) -> str | None:
    last = request[-1]
    assert isinstance(last, ModelRequest)
    return None if last.instructions is None else last.instructions.strip()


async def test_a_long_history_is_summarised_and_the_summary_sent_with_the_recent_turns(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    conversation, rows = await long_conversation(alice)
    last_question = rows[-2]
    assert await responder.needs_summary(last_question.pk, actor=alice)
    scripted_llm.add_turns(["The user asked Q1 and Q2."])

    async with pubsub.subscribe(messages_topic(conversation.pk)) as subscription:
        await responder.summarize(last_question.pk, actor=alice)
        async with asyncio.timeout(WAIT):
            _, announced = await anext(aiter(subscription))

    # Newest turns of up to half the budget (200 characters) stay: the last exchange; the
    # rest, ending with an answer, is folded into a summary stored on its last message.
    (request,) = scripted_llm.requests
    assert instructions(request) == SUMMARY_PROMPT.strip()
    [(_, transcript)] = sent(request)
    assert transcript.startswith(f"User: {rows[0].text}\n\nAssistant: {rows[1].text}")
    assert rows[5].text in transcript and rows[6].text not in transcript
    holder = await Message.objects.aget(summary__gt="")
    assert (holder.pk, holder.summary, holder.summary_count) == (
        rows[5].pk,
        "The user asked Q1 and Q2.",
        6,
    )
    assert announced == {"type": "message", "id": str(holder.pk)}
    assert not await responder.needs_summary(last_question.pk, actor=alice)

    # The next question is sent the summary in place of the six messages, then the recent turns.
    question = await Message.objects.acreate(conversation=conversation, text="And now?")
    scripted_llm.add_turns(["Now this."])
    await responder.respond(question.pk, actor=alice)

    assert sent(scripted_llm.requests[-1]) == [
        ("user", f"{responder.summary_intro}\n\nThe user asked Q1 and Q2."),
        ("user", rows[6].text),
        ("assistant", rows[7].text),
        ("user", "And now?"),
    ]
    assert await responder.history(question) == [
        ChatMessage("user", f"{responder.summary_intro}\n\nThe user asked Q1 and Q2."),
        ChatMessage("user", rows[6].text),
        ChatMessage("assistant", rows[7].text),
        ChatMessage("user", "And now?"),
    ]


async def test_a_later_summary_extends_the_earlier_one(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    conversation, rows = await long_conversation(alice)
    await Message.objects.filter(pk=rows[5].pk).aupdate(summary="First summary.", summary_count=6)
    for number in (5, 6, 7):
        rows.extend(await exchange(conversation, number))
    scripted_llm.add_turns(["Second summary."])

    await responder.summarize(rows[-2].pk, actor=alice)

    [(_, transcript)] = sent(scripted_llm.requests[-1])
    assert transcript.startswith(f"Previous summary:\nFirst summary.\n\nUser: {rows[6].text}")
    assert rows[5].text not in transcript  # covered by the first summary already
    latest = await Message.objects.filter(summary__gt="").order_by("-id").afirst()
    assert latest is not None
    assert (latest.summary, latest.summary_count) == ("Second summary.", 12)
    assert (await Message.objects.aget(pk=rows[5].pk)).summary == "First summary."  # kept
    history = await responder.history(rows[-2])
    assert history[0] == ChatMessage("user", f"{responder.summary_intro}\n\nSecond summary.")


async def test_a_short_history_or_no_budget_needs_no_summary(
    scripted_llm: ScriptedLLM, alice: Any, settings: Any
) -> None:
    _, rows = await long_conversation(alice, exchanges=2)
    assert not await responder.needs_summary(rows[-2].pk, actor=alice)

    class NoBudget(LongResponder):
        history_budget = None

    _, long_rows = await long_conversation(alice)
    settings.AI_CHAT_HISTORY_TOKEN_BUDGET = None
    assert not await NoBudget().needs_summary(long_rows[-2].pk, actor=alice)
    await NoBudget().summarize(long_rows[-2].pk, actor=alice)
    assert scripted_llm.requests == []
    assert len(await NoBudget().history(long_rows[-2])) == 7  # history_limit only


async def test_until_the_summary_is_made_the_history_keeps_the_newest_turns_in_the_budget(
    alice: Any,
) -> None:
    _, rows = await long_conversation(alice)
    question = rows[-2]

    history = await responder.history(question)

    # 400 characters of budget: the newest messages that fit, from a question on.
    assert history == [
        ChatMessage("user", rows[4].text),
        ChatMessage("assistant", rows[5].text),
        ChatMessage("user", question.text),
    ]


async def test_summaries_are_the_actors_own(scripted_llm: ScriptedLLM, alice: Any) -> None:
    bob = await sync_to_async(make_user)("bob")
    _, rows = await long_conversation(alice)

    assert not await responder.needs_summary(rows[-2].pk, actor=bob)
    await responder.summarize(rows[-2].pk, actor=bob)

    assert scripted_llm.requests == []
    assert not await Message.objects.filter(summary__gt="").aexists()
    # And what bob may read never holds alice's summary.
    await Message.objects.filter(pk=rows[5].pk).aupdate(summary="Alice's secrets.")
    assert not await Message.objects.for_actor(bob).filter(summary__gt="").aexists()


async def test_a_failing_summary_model_leaves_the_history_as_it_was(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _, rows = await long_conversation(alice)
    scripted_llm.add_turns([RuntimeError("provider down")])

    await responder.summarize(rows[-2].pk, actor=alice)

    assert not await Message.objects.filter(summary__gt="").aexists()
    assert await responder.needs_summary(rows[-2].pk, actor=alice)


# -- the job ----------------------------------------------------------------------------------


async def db(function: Callable[[], T]) -> T:
    def run() -> T:
        try:
            return function()
        finally:
            connection.close()

    return await sync_to_async(run)()


async def eventually(what: str, condition: Callable[[], Any]) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if result := await db(condition):
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _clear_jobs() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE task_name LIKE 'summaries.%%'")


def _jobs(task: str) -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name=f"summaries.{task}").order_by("id"))


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    await db(_clear_jobs)
    workers = Workers(
        summary_jobs.queues, shutdown_timeout=1, name="tests", fetch_job_polling_interval=0.1
    )
    await workers.astart()
    try:
        yield workers
    finally:
        await workers.astop()
        await db(_clear_jobs)


def _summary_requests(llm: ScriptedLLM) -> list[list[ModelMessage]]:
    return [r for r in llm.requests if instructions(r) == SUMMARY_PROMPT.strip()]


async def test_the_answer_job_defers_one_summary_job_and_the_next_answer_is_sent_it(
    scripted_llm: ScriptedLLM, alice: Any, workers: Workers
) -> None:
    conversation, rows = await long_conversation(alice, exchanges=3)
    question = await Message.objects.acreate(conversation=conversation, text="Q4 ".ljust(100, "q"))
    scripted_llm.add_turns(["A4 ".ljust(100, "a")], ["Summary of Q1 to Q3."])

    await db(lambda: summary_jobs.defer_response(question, alice))
    await eventually("the summary", lambda: Message.objects.filter(summary__gt="").exists())
    await eventually(
        "no job left",
        lambda: (
            not ProcrastinateJob.objects.filter(
                task_name__startswith="summaries.", status__in=["todo", "doing"]
            ).exists()
        ),
    )

    # The second answer fits (summary + the recent turns): no second summary job.
    follow_up = await Message.objects.acreate(conversation=conversation, text="Thanks!")
    scripted_llm.add_turns(["You're welcome."])
    await db(lambda: summary_jobs.defer_response(follow_up, alice))
    await eventually("the answer", lambda: Message.objects.filter(response_to=follow_up).exists())
    await eventually(
        "no job left",
        lambda: (
            not ProcrastinateJob.objects.filter(
                task_name__startswith="summaries.", status__in=["todo", "doing"]
            ).exists()
        ),
    )

    assert len(_summary_requests(scripted_llm)) == 1
    assert sent(scripted_llm.requests[-1])[0] == (
        "user",
        f"{responder.summary_intro}\n\nSummary of Q1 to Q3.",
    )
    holder = await Message.objects.aget(summary__gt="")
    assert holder.pk == rows[5].pk  # A3: Q4 and its answer stay verbatim


async def test_one_summary_job_waits_per_conversation_behind_its_lock(alice: Any) -> None:
    conversation, rows = await long_conversation(alice)
    await db(_clear_jobs)
    lock = summary_jobs.conversation_lock(conversation.pk)

    for _ in range(3):
        context = _context(lock)
        await summary_jobs._defer_summary(context, str(rows[-2].pk), alice)

    [job] = await db(lambda: _jobs("summarize"))
    assert (job.lock, job.queue_name) == (lock, "conversations")
    assert job.args == {"message_id": str(rows[-2].pk), "actor_id": alice.pk}
    await db(_clear_jobs)


def _context(lock: str) -> Any:
    return SimpleNamespace(job=SimpleNamespace(lock=lock))  # what `_defer_summary` reads
