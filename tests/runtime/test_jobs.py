"""`ChatJobs`: a chat app's jobs, run by a real procrastinate worker on real Postgres.

The app is `tests.jobsapp`: `tests.testapp`'s chat models, a responder that records calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from procrastinate import JobContext
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.contrib.django.models import ProcrastinateJob
from procrastinate.jobs import Job

import django_ai_chat.jobs as jobs_module
import django_ai_chat.models as models_module
from django_ai_chat.jobs import TITLE_DELAY
from django_ai_chat.worker import Workers, worker_connector
from tests.jobsapp.jobs import chat_jobs
from tests.jobsapp.responder import responder
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to happen; never a speed assertion

T = TypeVar("T")


async def db(function: Callable[[], T]) -> T:
    """Run ORM code in asgiref's thread, closing its connection after (it would outlive the
    test database)."""

    def run() -> T:
        try:
            return function()
        finally:
            connection.close()

    return await sync_to_async(run)()


async def eventually(what: str, condition: Callable[[], Any]) -> Any:
    """Poll `condition` (sync, ORM allowed) until it is truthy."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if result := await db(condition):
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _clear_jobs() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE task_name LIKE 'jobsapp.%%'")


@pytest.fixture(autouse=True)
async def clean() -> AsyncIterator[None]:
    # procrastinate's tables are not Django-managed: the test database flush leaves them.
    responder.reset()
    await db(_clear_jobs)
    yield
    await db(_clear_jobs)


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    workers = Workers(
        chat_jobs.queues, shutdown_timeout=1, name="tests", fetch_job_polling_interval=0.1
    )
    await workers.astart()
    try:
        yield workers
    finally:
        await workers.astop()


def _conversation(messages: int = 1, *, user: User | None = None) -> Conversation:
    """A conversation of `messages` messages (questions and answers in turn)."""
    if user is None:
        user = User.objects.create_user(f"user{User.objects.count()}")
    conversation = Conversation.objects.create(user=user)
    for index in range(messages):
        source = Message.Source.USER if index % 2 == 0 else Message.Source.AGENT
        Message.objects.create(conversation=conversation, source=source, text=f"message {index}")
    return conversation


def _ask(conversation: Conversation, actor: Any) -> Message:
    question = Message.objects.create(conversation=conversation, text="A question?")
    chat_jobs.defer_response(question, actor)
    return question


def _jobs(task: str) -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name=f"jobsapp.{task}").order_by("id"))


def _titled(conversation: Conversation) -> bool:
    return Conversation.objects.filter(pk=conversation.pk, title="A title").exists()


def _no_jobs_left() -> bool:
    return not ProcrastinateJob.objects.filter(
        task_name__in=["jobsapp.respond", "jobsapp.name_conversation"]
    ).exists()


# -- respond ----------------------------------------------------------------------------------


async def test_the_answer_is_given_as_the_user_marked_as_the_agent(workers: Workers) -> None:
    conversation = await db(_conversation)
    question = await db(lambda: _ask(conversation, conversation.user))

    await eventually("the answer", lambda: Message.objects.filter(response_to=question).exists())

    [(message_id, actor)] = responder.answered
    assert message_id == str(question.pk)
    assert actor.pk == conversation.user.pk
    assert actor.chat_agent is True
    assert responder.interrupted == []
    # Successful jobs are deleted: the messages are the record.
    await eventually("the job row gone", lambda: not _jobs("respond"))


async def test_an_answer_job_holds_the_conversation_lock_and_the_actor() -> None:
    conversation = await db(_conversation)

    question = await db(lambda: _ask(conversation, conversation.user))

    [job] = await db(lambda: _jobs("respond"))
    assert job.lock == chat_jobs.conversation_lock(conversation.pk)
    assert job.lock != chat_jobs.conversation_lock((await db(_conversation)).pk)
    assert job.args == {"message_id": str(question.pk), "actor_id": conversation.user.pk}
    assert job.queue_name == "chat_responses"


@pytest.mark.parametrize("change", ["deactivate", "delete"])
async def test_a_user_gone_since_asking_gets_the_error_and_no_answer(
    workers: Workers, change: str
) -> None:
    conversation = await db(_conversation)
    user = conversation.user

    def ask_then_leave() -> Message:
        with_user = Conversation.objects.create(user=user)
        question = _ask(with_user, user)
        if change == "delete":
            # Keep the question (a real deletion cascades to it): only the user is gone.
            heir = User.objects.create_user("heir")
            Conversation.objects.filter(user=user).update(user=heir)
            user.delete()
        else:
            User.objects.filter(pk=user.pk).update(is_active=False)
        return question

    question = await db(ask_then_leave)

    await eventually("the error", lambda: responder.interrupted)
    assert responder.interrupted == [(str(question.pk), responder.error_text)]
    assert responder.answered == []


async def test_a_failed_answer_is_retried_once_then_ends_with_the_error(
    workers: Workers,
) -> None:
    responder.failures = 2
    conversation = await db(_conversation)
    question = await db(lambda: _ask(conversation, conversation.user))

    await eventually("the error", lambda: responder.interrupted)

    assert [message_id for message_id, _actor in responder.answered] == [str(question.pk)] * 2
    assert responder.interrupted == [(str(question.pk), responder.error_text)]


async def test_a_failure_then_a_success_answers_without_an_error(workers: Workers) -> None:
    responder.failures = 1
    conversation = await db(_conversation)
    question = await db(lambda: _ask(conversation, conversation.user))

    await eventually("the answer", lambda: Message.objects.filter(response_to=question).exists())

    assert len(responder.answered) == 2
    assert responder.interrupted == []


async def test_the_answer_defers_the_title_of_a_conversation_that_needs_one(
    workers: Workers,
) -> None:
    conversation = await db(lambda: _conversation(messages=2))
    await db(lambda: _ask(conversation, conversation.user))  # the 3rd; the answer is the 4th

    await eventually("the title", lambda: _titled(conversation))
    assert responder.title_calls == [str(conversation.pk)]


# -- titles -----------------------------------------------------------------------------------


@pytest.fixture
def title_after_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's threshold (4 messages), under which 2-3 messages wait for `TITLE_DELAY`."""
    monkeypatch.setattr(models_module, "TITLE_AFTER_MESSAGES", 4)
    monkeypatch.setattr(jobs_module, "TITLE_AFTER_MESSAGES", 4)


async def test_a_conversation_is_named_by_one_model_call_however_often_it_is_deferred(
    workers: Workers,
) -> None:
    # A message arriving while the title is being generated defers another naming job (the
    # waiting one is de-duplicated, the running one is not): it must not call the model again.
    gate = responder.title_gate = asyncio.Event()
    conversation = await db(lambda: _conversation(messages=4))
    await db(lambda: chat_jobs.defer_title(conversation))
    await eventually("the first naming call", lambda: responder.title_calls)

    await db(lambda: chat_jobs.defer_title(conversation))
    await db(lambda: chat_jobs.defer_title(conversation))
    assert len(await db(lambda: _jobs("name_conversation"))) == 2  # one running, one waiting
    await asyncio.sleep(0.5)  # give a second job the chance to start, if it could
    gate.set()

    await eventually("the naming jobs done", _no_jobs_left)
    assert responder.title_calls == [str(conversation.pk)]
    assert (await db(lambda: Conversation.objects.get(pk=conversation.pk))).title == "A title"


async def test_a_title_due_now_is_not_held_up_by_one_scheduled_for_later(
    workers: Workers, title_after_four: None
) -> None:
    conversation = await db(lambda: _conversation(messages=2))
    await db(lambda: chat_jobs.defer_title(conversation))  # 2 messages: in 10 minutes
    [later] = await db(lambda: _jobs("name_conversation"))
    assert later.scheduled_at == conversation.inserted_at + TITLE_DELAY

    def two_more() -> None:
        for text in ("another question", "another answer"):
            Message.objects.create(conversation=conversation, text=text)
        chat_jobs.defer_title(conversation)

    await db(two_more)

    await eventually("the title", lambda: _titled(conversation))
    assert responder.title_calls == [str(conversation.pk)]


async def test_a_titled_or_locked_or_short_conversation_defers_no_naming() -> None:
    def defer_for(**fields: Any) -> None:
        conversation = _conversation(messages=fields.pop("messages", 4))
        Conversation.objects.filter(pk=conversation.pk).update(**fields)
        conversation.refresh_from_db()
        chat_jobs.defer_title(conversation)

    await db(lambda: defer_for(title="Given"))
    await db(lambda: defer_for(title_locked=True))
    await db(lambda: defer_for(messages=1))

    assert await db(lambda: _jobs("name_conversation")) == []


async def test_a_short_conversation_is_named_once_ten_minutes_old(title_after_four: None) -> None:
    conversation = await db(lambda: _conversation(messages=2))

    await db(lambda: chat_jobs.defer_title(conversation))
    await db(lambda: chat_jobs.defer_title(conversation))

    [job] = await db(lambda: _jobs("name_conversation"))
    assert job.scheduled_at == conversation.inserted_at + timedelta(minutes=10)
    assert job.queue_name == "conversations"


@override_settings(USE_TZ=False)
def test_naming_is_scheduled_with_naive_datetimes_too(title_after_four: None) -> None:
    # USE_TZ = False: the ORM gives naive local times, procrastinate refuses them. (Sync: the
    # override resets the time zone of this thread's connection only.)
    conversation = _conversation(messages=2)
    assert timezone.is_naive(conversation.inserted_at)

    chat_jobs.defer_title(conversation)

    [job] = _jobs("name_conversation")
    assert job.scheduled_at == conversation.inserted_at + TITLE_DELAY


def _ask_and_defer_the_title(conversation: Conversation) -> None:
    # As the send view does, in one transaction; waiting 2 s for a lock is an error here.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        _ask(conversation, conversation.user)
        chat_jobs.defer_title(conversation)


async def test_a_worker_stopped_right_after_taking_the_naming_job_holds_up_no_question(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker process can stop anywhere (SIGSTOP, a paused VM, swapping), e.g. between a query
    # of its connection pool and the commit sent after it. The naming job it has just taken
    # kept its queueing lock then, and the next question, deferring the title again with that
    # lock, waited for the worker to run again: the scale-out e2e test's POST timed out so.
    conversation = await db(lambda: _conversation(messages=2))
    await db(lambda: chat_jobs.defer_title(conversation))
    stopped, resumed = asyncio.Event(), asyncio.Event()
    commit = psycopg.AsyncConnection.commit

    async def commit_once_resumed(self: psycopg.AsyncConnection[Any]) -> None:
        if not stopped.is_set():
            stopped.set()
            await resumed.wait()
        await commit(self)

    worker_app = procrastinate_app.with_connector(worker_connector())
    async with worker_app.open_async():
        worker_id = await worker_app.job_manager.register_worker()
        with monkeypatch.context() as patch:
            patch.setattr(psycopg.AsyncConnection, "commit", commit_once_resumed)
            taking = asyncio.create_task(
                worker_app.job_manager.fetch_job(["conversations"], worker_id=worker_id)
            )
            try:
                await asyncio.wait_for(stopped.wait(), WAIT)
                await db(lambda: _ask_and_defer_the_title(conversation))
            finally:
                resumed.set()
                taken = await taking
        await worker_app.job_manager.unregister_worker(worker_id)

    assert taken is not None and taken.task_name == "jobsapp.name_conversation"
    jobs = await db(lambda: _jobs("name_conversation"))
    assert [job.status for job in jobs] == ["doing", "todo"]  # the taken one, the new one


# -- rescue -----------------------------------------------------------------------------------


def _stall(job_id: int, *, attempts: int) -> None:
    """Make `job_id` a job a dead worker was running (procrastinate's own statuses)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL, attempts = %s "
            "WHERE id = %s",
            [attempts, job_id],
        )


async def _rescue() -> None:
    job = Job(id=None, queue="conversations", lock=None, queueing_lock=None, task_name="rescue")
    # As a worker runs it: on procrastinate's worker connector (the Django one differs).
    worker_app = procrastinate_app.with_connector(worker_connector())
    async with worker_app.open_async():
        context = JobContext(app=worker_app, job=job, start_timestamp=0, abort_reason=lambda: None)
        await chat_jobs.rescue_stalled_jobs.func(context, timestamp=0)


async def test_a_stalled_answer_is_retried_then_ended_with_an_error() -> None:
    conversation = await db(_conversation)
    question = await db(lambda: _ask(conversation, conversation.user))
    [job] = await db(lambda: _jobs("respond"))

    await db(lambda: _stall(job.id, attempts=0))
    await _rescue()
    assert [j.status for j in await db(lambda: _jobs("respond"))] == ["todo"]
    assert responder.interrupted == []

    await db(lambda: _stall(job.id, attempts=1))
    await _rescue()
    assert [j.status for j in await db(lambda: _jobs("respond"))] == ["failed"]
    assert responder.interrupted == [(str(question.pk), None)]


async def test_the_rescue_leaves_other_apps_jobs_alone() -> None:
    conversation = await db(_conversation)
    await db(lambda: _ask(conversation, conversation.user))
    [job] = await db(lambda: _jobs("respond"))
    await db(lambda: _stall(job.id, attempts=0))

    def execute(sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [job.id])

    await db(lambda: execute("UPDATE procrastinate_jobs SET task_name = 'other.x' WHERE id = %s"))
    try:
        await _rescue()
        status = await db(lambda: ProcrastinateJob.objects.get(pk=job.id).status)
        assert status == "doing"
    finally:
        await db(lambda: execute("DELETE FROM procrastinate_jobs WHERE id = %s"))


# -- configuration ----------------------------------------------------------------------------


def test_queues_and_names_follow_the_app_label() -> None:
    assert chat_jobs.queues == {"chat_responses": 10, "conversations": 10}
    assert chat_jobs.respond.name == "jobsapp.respond"
    assert chat_jobs.name_conversation.name == "jobsapp.name_conversation"
    assert chat_jobs.rescue_stalled_jobs.name == "jobsapp.rescue_stalled_jobs"
    assert chat_jobs.user_model() is User


async def test_a_follow_up_sent_while_the_answer_runs_starts_without_the_poll() -> None:
    # Only notifications wake this worker: without the wake-up after each answer job, a
    # follow-up deferred while its conversation's lock was held would wait for the poll.
    workers = Workers(
        chat_jobs.queues, shutdown_timeout=1, name="tests", fetch_job_polling_interval=3600
    )
    await workers.astart()
    try:
        conversation = await db(lambda: _conversation(0))
        user = await db(lambda: User.objects.get(pk=conversation.user_id))
        responder.answer_gate = asyncio.Event()
        current = await db(lambda: _ask(conversation, user))
        for _ in range(20):
            await eventually("the answer to start", lambda: len(responder.answered) > 0)
            follow_up = await db(lambda: _ask(conversation, user))
            gate, responder.answer_gate = responder.answer_gate, asyncio.Event()
            gate.set()
            await eventually(
                "the previous answer",
                lambda: Message.objects.filter(response_to=current).exists(),  # noqa: B023
            )
            await eventually(
                "the follow-up to start",
                lambda: responder.answered[-1][0] == str(follow_up.pk),  # noqa: B023
            )
            current = follow_up
        responder.answer_gate.set()
        await eventually("the last answer", lambda: not _jobs("respond"))
    finally:
        responder.answer_gate = None
        await workers.astop()
