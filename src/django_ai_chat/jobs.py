"""A chat app's background jobs (procrastinate): answering questions and naming conversations.

The generated app makes one `ChatJobs` in its `jobs.py`; the responder (the policy: model,
prompts, tools) does the work, `ChatJobs` the mechanics around it:

- `<app>.respond` (queue `chat_responses`): answers one question. At most one answer per
  conversation runs at once (a procrastinate `lock`); a failed run is retried once, and the
  question ends with the responder's `error_text` when the retry fails too. The job acts for
  the person who asked: the user row is re-read (a deactivated or deleted user gets no answer,
  only the error) and marked `chat_agent = True`, so that permission checks and tools can tell
  the agent acting for them apart. After the answer it defers the title. An answer cut off by a
  stopping worker (`worker.HandedOver`) is continued by a new job of the same task
  (`resume=<answer id>`, same lock), which the next free worker picks up. An answer that paused
  for tool approvals is continued by the same task too (`approved=<batch>`), deferred by
  `defer_approved` once the person has decided every call.
- `<app>.summarize` (queue `conversations`): summarises a long history's older turns
  (`Responder.summarize`), deferred by an answer job whose responder says they are due
  (`needs_summary`). It holds the conversation's lock, so the next answer waits for the summary
  and is sent it; one waits at a time per conversation (a queueing lock).
- `<app>.name_conversation` (queue `conversations`): titles a conversation. Jobs of one
  conversation run one at a time (a `lock`), so it is named by exactly one model call.
- `<app>.rescue_stalled_jobs` (periodic, `AI_CHAT_RESCUE_CRON`): retries the jobs of workers
  silent for `AI_CHAT_STALLED_AFTER` seconds (killed, machine lost); an answer that stalled
  twice ends with an error instead, so nothing shows "Responding…" forever.

A question sent while the previous answer of its conversation is still running waits for that
job's lock; procrastinate looks at a skipped job again only on a notification or its 5 s poll, so
each answer job, once its row is finished, wakes the workers for the next job of its lock.

Jobs are deferred in the transaction of the write that makes them due, never polled. Every job
runs its ORM calls in a thread, so a database connection, of its own (procrastinate runs async
jobs on the worker's event loop: without that, every running answer would queue on asgiref's
one shared thread).

Longer than our usual modules: the four tasks are registered together by `ChatJobs` (one
procrastinate app, one lock naming scheme, one way to act as the user), and each is short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models, transaction
from django.utils import timezone
from procrastinate import JobContext, RetryStrategy
from procrastinate.connector import BaseAsyncConnector
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Status

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.limits import check_answer_limits
from django_ai_chat.models import TITLE_AFTER_MESSAGES, TITLE_DELAY
from django_ai_chat.worker import DEFAULT_CONCURRENCY, HandedOver, keep_until_stopped

if TYPE_CHECKING:
    from procrastinate.tasks import Task
    from pydantic_ai.models import Model

__all__ = ["RESPOND_ATTEMPTS", "TITLE_DELAY", "ChatJobs", "ResponderLike"]

logger = logging.getLogger(__name__)

RESPOND_ATTEMPTS: Final = 2
"""Runs of an answer (failed or stalled) before it is given up; the question then shows an error."""

_WAKE_POLL: Final = 0.02
"""Seconds between two looks at whether procrastinate has finished an answer job's row."""

_WAKE_LOOKS: Final = 250
"""Looks before giving up (5 s: the poll that wakes the next job anyway)."""

_WAKE_QUERY: Final = """
    SELECT
        EXISTS (SELECT 1 FROM procrastinate_jobs WHERE id = %(id)s AND status = 'doing')
            AS running,
        waiting.id AS waiting, waiting.queue_name AS waiting_queue
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT id, queue_name FROM procrastinate_jobs WHERE lock = %(lock)s AND status = 'todo'
        ORDER BY priority DESC, id LIMIT 1
    ) AS waiting ON true
"""

# Naming jobs of one conversation share a lock, and procrastinate runs none while an *earlier*
# job of the lock waits, even one scheduled minutes ahead: the job due now gets the higher
# priority so the scheduled one does not hold it up.
_TITLE_NOW_PRIORITY: Final = 1
_TITLE_LATER_PRIORITY: Final = 0


class ResponderLike(Protocol):
    """What `ChatJobs` needs of a responder (`django_ai_chat.answers.Responder` has it all)."""

    @property
    def error_text(self) -> str:
        """Shown under a question that could not be answered."""
        ...

    def get_model(self) -> str | Model:
        """The model in use (warmed up by the worker command)."""
        ...

    async def respond(self, message_id: str, *, actor: Any) -> None:
        """Answer the question `message_id` as `actor`.

        May raise `worker.HandedOver` (the worker is stopping); then the job calls `resume`, if
        the responder has it, in another worker.
        """
        ...

    async def finish_interrupted(self, message_id: str, *, error: str | None = None) -> None:
        """End the answer to `message_id` with `error` (its job will not run again)."""
        ...

    async def name_conversation(self, conversation_id: str) -> None:
        """Title the conversation when it needs one (does nothing otherwise)."""
        ...


class ChatJobs:
    """Registers a chat app's jobs on `procrastinate.contrib.django.app` and defers them.

    Args:
        app_label: The chat app's label: task names are `<app_label>.respond` and so on, its
            models `<app_label>.Conversation` / `<app_label>.Message` unless the responder names
            them (`conversation_model`, `message_model`).
        responder: Answers and names (see `ResponderLike`).
        responses_queue: Queue of the answers.
        conversations_queue: Queue of the titles and of the rescue.
        concurrency: Jobs of each queue one worker process runs at once: a number for both, or
            queue name → number; default `DEFAULT_CONCURRENCY` (10).

    Attributes:
        respond: The `<app_label>.respond` task (`message_id`, `actor_id`, and `resume`: the
            answer a stopping worker handed over).
        summarize: The `<app_label>.summarize` task (`message_id`: the question whose history
            is summarised, `actor_id`).
        name_conversation: The `<app_label>.name_conversation` task (`conversation_id`).
        rescue_stalled_jobs: The periodic `<app_label>.rescue_stalled_jobs` task.
        queues: Queue name → concurrency, for the worker (`WorkerCommand`, `with_worker`).

    Example:
        ```python
        from django_ai_chat.jobs import ChatJobs

        from .responder import responder

        chat_jobs = ChatJobs("chat", responder)
        ```
    """

    def __init__(
        self,
        app_label: str,
        responder: ResponderLike,
        *,
        responses_queue: str = "chat_responses",
        conversations_queue: str = "conversations",
        concurrency: int | Mapping[str, int] | None = None,
    ) -> None:
        self.app_label = app_label
        self.responder = responder
        self.responses_queue = responses_queue
        self.conversations_queue = conversations_queue
        if isinstance(concurrency, Mapping):
            limits = dict(concurrency)
        else:
            limit = DEFAULT_CONCURRENCY if concurrency is None else concurrency
            limits = {responses_queue: limit, conversations_queue: limit}
        self.queues: dict[str, int] = {
            queue: limits.get(queue, DEFAULT_CONCURRENCY)
            for queue in dict.fromkeys([responses_queue, conversations_queue])
        }
        self.respond: Task[Any, Any, Any] = app.task(
            queue=responses_queue,
            name=f"{app_label}.respond",
            retry=RetryStrategy(max_attempts=RESPOND_ATTEMPTS - 1, wait=2),
            pass_context=True,
        )(self._respond)
        self.summarize: Task[Any, Any, Any] = app.task(
            queue=conversations_queue, name=f"{app_label}.summarize", pass_context=True
        )(self._summarize)
        self.name_conversation: Task[Any, Any, Any] = app.task(
            queue=conversations_queue, name=f"{app_label}.name_conversation"
        )(self._name_conversation)
        self.rescue_stalled_jobs: Task[Any, Any, Any] = app.periodic(
            cron=str(ai_chat_settings.RESCUE_CRON)
        )(
            app.task(
                queue=conversations_queue,
                queueing_lock=f"{app_label}-rescue-stalled-jobs",
                name=f"{app_label}.rescue_stalled_jobs",
                pass_context=True,
            )(self._rescue_stalled_jobs)
        )

    def __repr__(self) -> str:
        return f"ChatJobs({self.app_label!r}, queues={self.queues!r})"

    # -- deferring (web side, inside the writing transaction) ---------------------------------

    def conversation_lock(self, conversation_id: Any) -> str:
        """Jobs sharing this lock run one at a time: at most one answer per conversation."""
        return f"{self.app_label}-conversation-{conversation_id}"

    def defer_response(self, message: models.Model, actor: Any) -> None:
        """Enqueue the answer to the user message `message`, to be given as `actor`.

        Call it inside the transaction that wrote the message: the job exists if and only if
        the message does. The actor's limits are checked first (`limits.check_answer_limits`):
        over one, nothing is queued and the refusal rolls the transaction back.

        Raises:
            LimitExceeded: `actor` is over a limit (`AI_CHAT_MESSAGE_LIMIT`, ...); `str()` says
                when to try again.
        """
        conversation_id = message.conversation_id  # type: ignore[attr-defined]
        settle = getattr(self.responder, "settle_approvals", None)
        if settle is not None:
            # A new question while an action waits for approval: the person moved on, so the
            # action does not run (the model learns so from the history); counted before the
            # limits, since the waiting answer ends here.
            settle(conversation_id, reason="superseded")
        check_answer_limits(actor, type(message))  # type: ignore[arg-type]
        self.respond.configure(lock=self.conversation_lock(conversation_id)).defer(
            message_id=str(message.pk), actor_id=None if actor is None else actor.pk
        )

    def defer_approved(self, approval: models.Model, actor: Any) -> bool:
        """Enqueue the continuation of the answer `approval` paused, once its batch is decided.

        Call it inside the transaction of the decision (`ToolApprovalQuerySet.decide`), for
        every decision: it queues nothing while a call of the same batch waits, and at most one
        job per batch (a queueing lock). The job (`respond` with `approved=<batch>`, on the
        conversation's lock) runs `responder.continue_approved` as `actor`.

        Returns:
            Whether a job was queued now.
        """
        approval_model = type(approval)
        batch = approval.batch  # type: ignore[attr-defined]
        if approval_model._default_manager.filter(batch=batch).pending().exists():  # type: ignore[attr-defined]
            return False
        answer = (
            self._message_model()
            ._default_manager.filter(pk=approval.message_id)  # type: ignore[attr-defined]
            .values("conversation_id", "response_to_id")
            .first()
        )
        if answer is None or answer["response_to_id"] is None:
            return False
        try:
            with transaction.atomic():
                self.respond.configure(
                    lock=self.conversation_lock(answer["conversation_id"]),
                    queueing_lock=f"{self.app_label}-approved-{batch}",
                ).defer(
                    message_id=str(answer["response_to_id"]),
                    actor_id=None if actor is None else actor.pk,
                    approved=str(batch),
                )
        except AlreadyEnqueued:
            return False
        return True

    def defer_title(self, conversation: models.Model) -> None:
        """Enqueue naming when the conversation needs a title, or schedule it for when it will.

        The rule of `needs_title`: untitled and not locked, with `TITLE_AFTER_MESSAGES` (2: the
        first exchange) messages or more (now), or 2+ messages and `TITLE_DELAY` old
        (scheduled). A job already waiting is not doubled.
        """
        if conversation.title or conversation.title_locked:  # type: ignore[attr-defined]
            return
        count = self._message_model()._default_manager.filter(conversation=conversation).count()
        if count >= TITLE_AFTER_MESSAGES:
            self._defer_title_job(conversation, f"{self.app_label}-title-{conversation.pk}")
        elif count > 1:
            inserted_at: datetime = conversation.inserted_at  # type: ignore[attr-defined]
            when = inserted_at + TITLE_DELAY
            self._defer_title_job(
                conversation,
                f"{self.app_label}-title-later-{conversation.pk}",
                when=when if when > timezone.now() else None,
            )

    async def adefer_title(self, conversation: models.Model) -> None:
        """Async `defer_title`."""
        await sync_to_async(self.defer_title)(conversation)

    def _defer_title_job(
        self, conversation: models.Model, queueing_lock: str, *, when: datetime | None = None
    ) -> None:
        if when is not None and timezone.is_naive(when):
            # USE_TZ = False: the database's naive local time; procrastinate needs it aware.
            when = timezone.make_aware(when)
        later = queueing_lock.startswith(f"{self.app_label}-title-later-")
        try:
            # A savepoint: the refused duplicate must not break the caller's transaction.
            with transaction.atomic():
                self.name_conversation.configure(
                    lock=f"{self.app_label}-title-{conversation.pk}",
                    queueing_lock=queueing_lock,
                    schedule_at=when,
                    priority=_TITLE_LATER_PRIORITY if later else _TITLE_NOW_PRIORITY,
                ).defer(conversation_id=str(conversation.pk))
        except AlreadyEnqueued:
            pass

    # -- the tasks (worker side) ----------------------------------------------------------------

    async def _respond(
        self,
        context: JobContext,
        message_id: str,
        actor_id: Any = None,
        resume: str | None = None,
        approved: str | None = None,
    ) -> None:
        try:
            await self._answer(context, message_id, actor_id, resume, approved)
        finally:
            _wake_after(context)

    async def _summarize(self, context: JobContext, message_id: str, actor_id: Any = None) -> None:
        try:
            summarize = getattr(self.responder, "summarize", None)
            if summarize is None:
                return
            async with _own_db_thread():
                actor = await self._aload_actor(actor_id)
                if actor is None and actor_id is not None:
                    return  # gone or deactivated: nobody to summarise for
                await summarize(message_id, actor=actor)
        finally:
            _wake_after(context)

    async def _defer_summary(self, context: JobContext, message_id: str, actor: Any) -> None:
        """After an answer: defer `summarize` when its responder says older turns are due."""
        needs_summary = getattr(self.responder, "needs_summary", None)
        if needs_summary is None or not await needs_summary(message_id, actor=actor):
            return
        lock = context.job.lock
        # The answer's lock: the next answer of the conversation waits for the summary. One
        # waiting already (the queueing lock) summarises what is due when it runs.
        with contextlib.suppress(AlreadyEnqueued):
            await self.summarize.configure(
                lock=lock, queueing_lock=None if lock is None else f"{lock}-summary"
            ).defer_async(message_id=message_id, actor_id=None if actor is None else actor.pk)

    async def _answer(
        self,
        context: JobContext,
        message_id: str,
        actor_id: Any,
        resume: str | None,
        approved: str | None = None,
    ) -> None:
        responder = self.responder
        resume_answer = getattr(responder, "resume", None)
        continue_approved = getattr(responder, "continue_approved", None)
        if context.job.attempts:
            # A retry (its worker died): the row may hold less than browsers were shown, so the
            # answer starts again (the stale row is removed) instead of going on from the row.
            resume = None
        async with _own_db_thread():
            try:
                actor = await self._aload_actor(actor_id)
                if actor is None and actor_id is not None:
                    # Deleted or deactivated since asking: nobody to act for, but the question
                    # must not show "Responding…" forever.
                    logger.warning(
                        "Not answering %s: user %r is gone or inactive.", message_id, actor_id
                    )
                    await responder.finish_interrupted(message_id, error=responder.error_text)
                    return
                if resume is not None and resume_answer is not None:
                    await resume_answer(message_id, resume, actor=actor)
                elif approved is not None:
                    # A retry too goes on from the pause: each approved call runs at most once.
                    if continue_approved is not None:
                        await continue_approved(message_id, approved, actor=actor)
                else:
                    await responder.respond(message_id, actor=actor)
            except HandedOver as handed_over:
                # Same task and lock: it starts once this job has ended, on a free worker.
                await self.respond.configure(lock=context.job.lock).defer_async(
                    message_id=message_id, actor_id=actor_id, resume=handed_over.message_id
                )
                logger.info(
                    "Answer %s to %s handed over: the worker is stopping.",
                    handed_over.message_id,
                    message_id,
                )
                return
            except Exception:
                if context.job.attempts + 1 >= RESPOND_ATTEMPTS:
                    # No retry left: the person gets an error instead of an endless spinner.
                    await responder.finish_interrupted(message_id, error=responder.error_text)
                raise
            try:
                await self._defer_summary(context, message_id, actor)
            except Exception:
                # The answer stands; the next one looks again.
                logger.exception("Deferring the summary after answer to %s failed.", message_id)
            try:
                await sync_to_async(self._defer_title_after)(message_id)
            except Exception:
                # The answer stands; the next one defers the title again.
                logger.exception("Deferring the title after answer to %s failed.", message_id)

    def _defer_title_after(self, message_id: str) -> None:
        question = (
            self._message_model()
            ._default_manager.select_related("conversation")
            .filter(pk=message_id)
            .first()
        )
        if question is not None:
            self.defer_title(question.conversation)  # type: ignore[attr-defined]

    async def _name_conversation(self, conversation_id: str) -> None:
        async with _own_db_thread():
            await self.responder.name_conversation(conversation_id)

    async def _rescue_stalled_jobs(self, context: JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        stalled_after = float(ai_chat_settings.STALLED_AFTER)
        async with _own_db_thread():
            expire = getattr(self.responder, "expire_approvals", None)
            if expire is not None:
                try:
                    await expire()
                except Exception:  # the rescue of jobs must still run
                    logger.exception("Expiring tool approvals failed.")
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
                if job.task_name == self.respond.name and job.attempts + 1 >= RESPOND_ATTEMPTS:
                    logger.warning(
                        "Answer job %s stalled %d times; giving up.", job.id, job.attempts + 1
                    )
                    await self.responder.finish_interrupted(str(job.task_kwargs["message_id"]))
                    await manager.finish_job(job, status=Status.FAILED, delete_job=False)
                elif job.task_name.startswith(f"{self.app_label}."):  # not other apps' jobs
                    logger.warning("Job %s (%s) stalled; retrying it.", job.id, job.task_name)
                    await manager.retry_job(job)

    # -- models and actors ------------------------------------------------------------------

    def _conversation_model(self) -> type[models.Model]:
        model = getattr(self.responder, "conversation_model", None)
        return model if model is not None else apps.get_model(self.app_label, "Conversation")

    def _message_model(self) -> type[models.Model]:
        model = getattr(self.responder, "message_model", None)
        return model if model is not None else apps.get_model(self.app_label, "Message")

    def user_model(self) -> type[models.Model] | None:
        """The model of the actors: the target of the conversation model's owner foreign key.

        `None` in no-user mode (`owner_field = None`, or no such field).
        """
        conversation_model = self._conversation_model()
        owner_field = getattr(conversation_model, "owner_field", "user")
        if owner_field is None:
            return None
        try:
            field = conversation_model._meta.get_field(owner_field)
        except FieldDoesNotExist:
            return None
        related = field.related_model
        return related if isinstance(related, type) else None

    async def _aload_actor(self, actor_id: Any) -> Any:
        """The active user `actor_id`, marked `chat_agent = True`; `None` if gone or inactive."""
        if actor_id is None:
            return None
        user_model = self.user_model()
        if user_model is None:
            return None  # no users in this project: tools run without an actor
        user = await user_model._default_manager.filter(pk=actor_id).afirst()
        if user is None or not getattr(user, "is_active", True):
            return None  # a deactivated account: its agent must not act either
        user.chat_agent = True  # type: ignore[attr-defined]
        return user


def _wake_after(context: JobContext) -> None:
    """Wake the next job of the finishing job's lock, once procrastinate has finished it."""
    job = context.job
    connector = context.app.connector
    if job.lock and job.id is not None and isinstance(connector, BaseAsyncConnector):
        keep_until_stopped(asyncio.create_task(_wake_next(connector, job.id, job.lock)))


async def _wake_next(connector: BaseAsyncConnector, job_id: int, lock: str) -> None:
    """Once job `job_id` is finished, wake the workers for the next job waiting on `lock`.

    A job deferred while another of its lock runs is skipped when fetched, and procrastinate
    fetches again only on a new job's notification or its polling interval (5 s): a follow-up
    sent the moment an answer ended waited that long for its first token. Procrastinate
    finishes the row only after the task returns, hence the few looks.
    """
    try:
        for _ in range(_WAKE_LOOKS):
            await asyncio.sleep(_WAKE_POLL)
            state = await connector.execute_query_one_async(_WAKE_QUERY, id=job_id, lock=lock)
            if state["waiting"] is None:
                return  # no follow-up: nothing to wake
            if not state["running"]:
                payload = json.dumps({"type": "job_inserted", "job_id": state["waiting"]})
                # The channels procrastinate's insert trigger notifies (workers of some queues
                # listen to theirs only).
                await connector.execute_query_async(
                    "SELECT pg_notify('procrastinate_queue_v1#' || %(queue)s, %(payload)s), "
                    "pg_notify('procrastinate_any_queue_v1', %(payload)s)",
                    queue=state["waiting_queue"],
                    payload=payload,
                )
                return
    except Exception:
        # The next job still starts, at the next poll.
        logger.warning("Could not wake the job after %s (lock %r).", job_id, lock, exc_info=True)


@contextlib.asynccontextmanager
async def _own_db_thread() -> AsyncIterator[None]:
    """Run the job's ORM calls in a thread (so a database connection) of its own.

    The thread ends with the job, so its connections are closed here, whatever `CONN_MAX_AGE`
    says.
    """
    async with ThreadSensitiveContext():
        try:
            yield
        finally:
            await sync_to_async(connections.close_all)()
