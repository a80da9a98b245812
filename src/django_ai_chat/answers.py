"""The answering and naming runs: `Responder` does the mechanics, a subclass sets the policy.

A generated app's `responder.py` subclasses `Responder` with its models and what a person edits
(model, prompts, tools, history length, the texts shown when something goes wrong) and exposes
one instance; its jobs call `respond`, `resume`, `finish_interrupted` and `name_conversation`.
Every step is a method: override one to change it (`get_system_prompt` per actor, `get_tools` per
conversation, `history` to choose what the model sees, ...).

What a run guarantees: it answers only a question of the actor's own conversation; a stale
unfinished answer (its run died) is removed and announced; one answer per question (a duplicate
job or a stop racing it loses, see `MessageQuerySet.create_answer`); the answer row exists from
the start (`complete=False`) and always ends `complete=True`, with `error` set when something
went wrong (the streamed text is kept) and `stopped` when the person stopped it; no pooled
database connection is held while the model thinks. A worker that stops (a deploy) while an
answer streams hands it over: the text so far is written to the row and `resume`, in another
worker, asks the model to go on from there, appending at the same offset (nothing shown twice).

Example:
    ```python
    class ChatResponder(Responder):
        conversation_model = Conversation
        message_model = Message
        model = "openai:gpt-4o"
        system_prompt = "You are a helpful assistant."


    responder = ChatResponder()
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.db import connections, models, transaction
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.translation import gettext_noop
from pydantic_ai.exceptions import ToolFailed

from django_ai_chat import attachments
from django_ai_chat.approvals import AbstractToolApproval, default_expiry
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.events import (
    ApprovalRequestEvent,
    DoneEvent,
    ErrorEvent,
    PausedRun,
    TextDeltaEvent,
    ThinkingDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.loop import (
    ChatMessage,
    Resumption,
    ToolDecision,
    ToolsArg,
    agenerate_text,
    astream,
)
from django_ai_chat.models import (
    MODEL_NAME_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    AbstractAttachment,
    AbstractConversation,
    AbstractMessage,
    new_id,
    signed_in,
)
from django_ai_chat.streaming import (
    AnswerWriter,
    aconversation_changed,
    amessage_changed,
    message_changed,
    messages_topic,
)
from django_ai_chat.worker import HandedOver, handover_scope

__all__ = ["Responder", "release_connections"]

logger = logging.getLogger(__name__)

_CONVERSATION: str = "conversation"  # a field of the concrete message model only

SYSTEM_PROMPT = """\
You are a helpful assistant inside this application's chat.
Use the tools at your disposal to look things up and to act for the user; never guess what a
tool could tell you, and say so when no tool can help.
Answer in Markdown. Be concise, and ask a short question when a request is ambiguous.
"""

CONTINUE_PROMPT = """\
Your previous answer was cut off. Continue it exactly where it stops, without repeating any of \
it and without comment.
"""

SUMMARY_PROMPT = """\
You summarise the earlier part of a conversation between a user and an assistant, so that the
assistant can go on without the full transcript. Keep every fact, decision, name, number, code
identifier and open question that later messages may rely on; drop pleasantries. Write concise
Markdown in the conversation's language, in the third person ("The user asked ..."). When a
previous summary is given, fold it in: the result replaces it.
RESPOND WITH ONLY THE SUMMARY.
"""

SUMMARY_INTRO = "Summary of the earlier part of this conversation (not repeated below):"

TITLE_PROMPT = """\
Provide a short name for the current conversation.
2-8 words, preferring more succinct names.
RESPOND WITH ONLY THE NEW CONVERSATION NAME.
"""


def release_connections() -> None:
    """Give this thread's pooled database connections back to the pool, outside transactions.

    An answer streams for seconds to minutes and touches the database only now and then:
    between those it should hold no pooled connection (`OPTIONS["pool"]`); the next query takes
    one again. Without a pool the connection stays: opening another for the next write would
    cost more than keeping it. Never inside a transaction (a test's, say): closing would end it.
    """
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict["OPTIONS"].get("pool") and not connection.in_atomic_block:
            connection.close()


class Responder:
    """Answers questions and names conversations; subclass it to set the policy.

    Attributes:
        conversation_model: The app's `AbstractConversation` subclass.
        message_model: The app's `AbstractMessage` subclass.
        attachment_model: The app's `AbstractAttachment` subclass, or `None` (no files).
        approval_model: The app's `AbstractToolApproval` subclass, or `None`: then a call that
            needs approval is refused (the model is told it was not run).
        model: Model string (`provider:model`); `settings.AI_CHAT_MODEL`, when set, wins.
        system_prompt: Instructions sent with every question.
        title_prompt: Instructions for naming a conversation.
        continue_prompt: Sent after the text of an answer a stopping worker handed over, so
            that the model goes on from there (`resume`).
        tools: `True` (every registered tool the actor may use), `False`, or names / tools.
        history_limit: Most recent messages sent to the model with each question; older ones
            are summarised (unless the history budget is off) rather than dropped.
        history_budget: Estimated tokens of history sent with a question (`estimate_tokens`);
            `None`: `settings.AI_CHAT_HISTORY_TOKEN_BUDGET` (16,000; `None` there: no budget,
            no summaries). Over it, older turns are summarised by a job (`summarize`).
        summary_prompt: Instructions for summarising older turns.
        summary_intro: Put before the summary where it replaces the older turns.
        title_history_limit: First messages the naming run shows the model.
        error_text: Shown under an answer that failed (the details go to the log).
        limit_text: Shown when the tool loop ran out of rounds (`AI_CHAT_MAX_ROUNDS`).
        empty_text: Shown when the model answered nothing at all.
        interrupted_text: Shown when the run was cut off (worker shutdown, dead job).
        tool_only_text: The answer's text when the model only called tools.
        approval_expired_text: Shown under an answer whose tool call waited too long for
            approval (`AI_CHAT_APPROVAL_EXPIRES_AFTER`); the call did not run.
        superseded_text: Shown under an answer whose tool call was still waiting for approval
            when the person sent a new message instead; the call did not run.
        fallback_title: Title when neither the model nor the first message gives one.
    """

    conversation_model: type[AbstractConversation]
    message_model: type[AbstractMessage]
    attachment_model: type[AbstractAttachment] | None = None
    approval_model: type[AbstractToolApproval] | None = None
    model: str = ""
    system_prompt: str = SYSTEM_PROMPT
    title_prompt: str = TITLE_PROMPT
    continue_prompt: str = CONTINUE_PROMPT
    tools: ToolsArg = True
    history_limit: int = 50
    history_budget: int | None = None
    summary_prompt: str = SUMMARY_PROMPT
    summary_intro: str = SUMMARY_INTRO
    title_history_limit: int = 10
    # Stored as written (a worker has no reader's language) and translated where shown
    # (`{% translate message.error %}`): msgids of the runtime's catalog.
    error_text: str = gettext_noop(
        "I hit an error while generating this response. Please try again."
    )
    limit_text: str = gettext_noop(
        "I hit a response limit while generating this reply. Please try again."
    )
    empty_text: str = gettext_noop("The model returned an empty response. Please try again.")
    interrupted_text: str = gettext_noop(
        "This answer was interrupted (the server stopped). Please try again."
    )
    approval_expired_text: str = gettext_noop(
        "This action waited too long for your approval and was not run."
    )
    superseded_text: str = gettext_noop(
        "Not run: a new message was sent before this action was approved."
    )
    tool_only_text: str = "Completed tool call."
    fallback_title: str = "New conversation"

    def __init__(self) -> None:
        """Check the subclass names its models (a missing one would fail only in the worker).

        Raises:
            ConfigurationError: `conversation_model` or `message_model` is missing or not a
                subclass of the abstract model it should extend.
        """
        for attribute, base in (
            ("conversation_model", AbstractConversation),
            ("message_model", AbstractMessage),
        ):
            model = getattr(self, attribute, None)
            if not (isinstance(model, type) and issubclass(model, base)):
                raise ConfigurationError(
                    f"{type(self).__name__}.{attribute} must be a subclass of {base.__name__} "
                    f"(your app's model), not {model!r}: set it in the class body."
                )

    # -- policy ---------------------------------------------------------------------------------

    def get_model(self) -> str:
        """The model string in use: `settings.AI_CHAT_MODEL`, else `model`.

        Raises:
            ConfigurationError: Neither is set.
        """
        model = ai_chat_settings.MODEL or self.model
        if not model:
            raise ConfigurationError(
                f"No model for {type(self).__name__}: set its `model` attribute "
                "(e.g. 'openai:gpt-4o') or settings.AI_CHAT_MODEL."
            )
        return model

    def get_models(self) -> list[tuple[str, str]]:
        """The models a person may choose per conversation, as `(model string, label)` pairs.

        `settings.AI_CHAT_MODELS` (a mapping, or model strings or pairs), else the one model of
        `get_model()`: the composer shows its picker for two or more.

        Raises:
            ConfigurationError: `AI_CHAT_MODELS` is neither.
        """
        configured = ai_chat_settings.MODELS
        if not configured:
            model = self.get_model()
            return [(model, model)]
        items = configured.items() if isinstance(configured, dict) else configured
        pairs: list[tuple[str, str]] = []
        for item in items:
            if isinstance(item, str):
                pairs.append((item, item))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
            else:
                raise ConfigurationError(
                    f"settings.AI_CHAT_MODELS holds {item!r}: give model strings, "
                    '(model, label) pairs or a mapping, e.g. {"openai:gpt-4o": "GPT-4o"}.'
                )
        return pairs

    def get_conversation_model(self, conversation: AbstractConversation) -> str:
        """The model that answers in `conversation`: its choice while allowed, else `get_model()`.

        A choice no longer in `get_models()` (the setting changed) falls back quietly.
        """
        chosen = conversation.ai_model
        if chosen and chosen in {model for model, _ in self.get_models()}:
            return chosen
        return self.get_model()

    def get_system_prompt(self, conversation: AbstractConversation, actor: Any) -> str:
        """The system prompt for answering in `conversation` as `actor` (`system_prompt`)."""
        return self.system_prompt

    def get_tools(self, conversation: AbstractConversation, actor: Any) -> ToolsArg:
        """The tools the model may call in `conversation` as `actor` (`tools`)."""
        return self.tools

    def accepts_file(self, model: str, media_type: str) -> bool:
        """Whether `model` gets a `media_type` attachment as the file itself, not its text.

        `attachments.accepts_file`: images everywhere, PDFs where the provider reads them.
        """
        return attachments.accepts_file(model, media_type)

    def get_history_budget(self) -> int | None:
        """Estimated tokens of history per question: `history_budget`, else the setting."""
        if self.history_budget is not None:
            return self.history_budget
        budget = ai_chat_settings.HISTORY_TOKEN_BUDGET
        return None if budget is None else int(budget)

    def estimate_tokens(self, text: str) -> int:
        """A cheap estimate of the tokens of `text`: a quarter of its characters, rounded up.

        Deterministic and provider-independent (the usage an answer stores counts the system
        prompt, the tool schemas and every tool round too, so it cannot size one message).
        """
        return (len(text) + 3) // 4

    async def history_messages(self, question: AbstractMessage) -> list[AbstractMessage]:
        """The complete messages the model may see before answering `question`, oldest first.

        The messages on the branch leading to `question` (included), in their order: other
        branches, later questions (sent while this one waited) and unfinished answers are left
        out, each answer comes right after its question. What
        `history` sends and what `summarize` summarises are chosen from these.
        """
        source = AbstractMessage.Source
        rows = (
            self.message_model.objects.in_conversation(question.conversation_id)
            .filter(complete=True)
            .filter(
                Q(source=source.USER, id__lte=question.pk)
                | Q(source=source.AGENT, response_to_id__lt=question.pk)
                # A regenerated answer's old version, which the person may have switched back to.
                | Q(source=source.AGENT, response_to__isnull=True, parent__isnull=False)
            )
            .defer("tool_calls", "tool_results")
        )
        messages = [m async for m in rows]
        # Only the branch that leads to `question` (`django_ai_chat.branches`): an edited
        # question's old version and a regenerated answer's old versions are not the model's.
        tree = await self.message_model.objects.atree(question.conversation_id)
        if question.pk in tree:
            order = {pk: i for i, pk in enumerate(tree.path_to(question.pk))}
            messages = [m for m in messages if m.pk in order]
            messages.sort(key=lambda m: order[m.pk])
        return messages

    async def history(self, question: AbstractMessage) -> list[ChatMessage]:
        """What the model is sent before `question`: the latest summary, then the recent turns.

        The messages after the last summarised one (`history_messages`), newest first while
        they fit `history_limit` and the budget (one that does not fit is summarised by the
        job the last answer deferred; until it has run, older turns are left out, and logged).
        Without a summary the history never starts with an answer.
        """
        rows = await self.history_messages(question)
        summarised, rows = _split_at_summary(rows)
        prefix = [] if summarised is None else [self.summary_message(summarised)]
        budget = self.get_history_budget()
        room = None
        if budget is not None:
            room = budget - sum(self.estimate_tokens(m.text) for m in prefix)
        recent = self._newest(rows, tokens=room, count=self.history_limit)
        if len(recent) < len(rows) and budget is not None:
            logger.info(
                "History of %s: %d older messages left out until they are summarised.",
                question.pk,
                len(rows) - len(recent),
            )
        if not prefix:
            while recent and recent[0].source == AbstractMessage.Source.AGENT:
                recent.pop(0)  # cut off from its question; models expect a user first
        user = AbstractMessage.Source.USER
        files = await self.chat_files(question, [m for m in recent if m.source == user])
        return prefix + [self.chat_message(m, files=files.get(m.pk, ())) for m in recent]

    def summary_message(self, message: AbstractMessage) -> ChatMessage:
        """The summary stored on `message`, as the model is sent it in place of the older turns."""
        return ChatMessage("user", f"{self.summary_intro}\n\n{message.summary}")

    def _newest(
        self, rows: list[AbstractMessage], *, tokens: int | None, count: int
    ) -> list[AbstractMessage]:
        """The newest `rows` within `count` messages and `tokens` (the newest one always)."""
        kept: list[AbstractMessage] = []
        used = 0
        for message in reversed(rows):
            size = self.estimate_tokens(message.text)
            if len(kept) >= count or (tokens is not None and kept and used + size > tokens):
                break
            kept.append(message)
            used += size
        return kept[::-1]

    def to_summarise(self, rows: list[AbstractMessage]) -> list[AbstractMessage]:
        """The messages of a history (`history_messages`) that are due to be summarised.

        None while the latest summary and what follows it fit the budget and `history_limit`;
        otherwise every message after the latest summary but the newest ones, which keep half
        the budget and half the limit, ending with an answer (the turns kept start with a
        question). Empty when the budget is off.
        """
        budget = self.get_history_budget()
        if budget is None:
            return []
        summarised, after = _split_at_summary(rows)
        used = sum(self.estimate_tokens(m.text) for m in after)
        if summarised is not None:
            used += self.estimate_tokens(self.summary_message(summarised).text)
        if used <= budget and len(after) <= self.history_limit:
            return []
        keep = self._newest(after, tokens=budget // 2, count=max(2, self.history_limit // 2))
        fold = after[: len(after) - len(keep)]
        while fold and fold[-1].source == AbstractMessage.Source.USER:
            fold.pop()  # its answer stays verbatim: the question stays with it
        return fold

    async def chat_files(
        self, question: AbstractMessage, messages: list[AbstractMessage]
    ) -> dict[Any, tuple[attachments.ChatFile, ...]]:
        """The files of `messages` (user messages), by message id, as the model will get them.

        Each goes as a file where `accepts_file` says the conversation's model reads it, else
        as its text; the question's attachments record which (`sent_as`, shown under them) and
        the question is announced so that pages show it.
        """
        if self.attachment_model is None or not messages:
            return {}
        conversation = await self._conversation_of(question)
        model = self.get_conversation_model(conversation)
        ids = [m.pk for m in messages]
        rows = self.attachment_model.objects.filter(**{"message_id__in": ids})
        files: dict[Any, list[attachments.ChatFile]] = {}
        changed = False
        async for row in rows.order_by("id"):
            as_text = not self.accepts_file(model, row.content_type)
            data = b"" if as_text else await sync_to_async(_read_file)(row)
            files.setdefault(row.message_id, []).append(
                attachments.ChatFile(
                    name=row.name,
                    media_type=row.content_type,
                    size=row.size,
                    data=data,
                    text=row.text,
                    as_text=as_text,
                )
            )
            sent_as = AbstractAttachment.SentAs.TEXT if as_text else AbstractAttachment.SentAs.FILE
            if row.message_id == question.pk and row.sent_as != sent_as:
                await self.attachment_model.objects.filter(pk=row.pk).aupdate(sent_as=sent_as)
                changed = True
        if changed:
            await amessage_changed(question.conversation_id, question.pk)
        return {message_id: tuple(items) for message_id, items in files.items()}

    async def _conversation_of(self, message: AbstractMessage) -> AbstractConversation:
        if _CONVERSATION in message._state.fields_cache:
            return message.conversation
        return await self.conversation_model.objects.aget(pk=message.conversation_id)

    def chat_message(
        self, message: AbstractMessage, *, files: tuple[attachments.ChatFile, ...] = ()
    ) -> ChatMessage:
        """`message` as the model sees it: its text and, for a question, its `files`.

        Earlier turns' reasoning is not sent back: no provider needs it across turns (Anthropic
        and OpenAI's reasoning models want it only within one turn's tool loop, which pydantic-ai
        keeps inside the run), and it would cost input tokens on every later question.
        """
        role: Literal["user", "assistant"] = (
            "assistant" if message.source == AbstractMessage.Source.AGENT else "user"
        )
        text = message.text
        if role == "assistant" and message.error in (
            self.approval_expired_text,
            self.superseded_text,
        ):
            # The model must not believe the action it asked for was carried out.
            text = f"{text}\n\n[{message.error}]" if text.strip() else f"[{message.error}]"
        return ChatMessage(role, text, files if role == "user" else ())

    def error_for(self, event: ErrorEvent) -> str:
        """The text shown under an answer whose run ended with `event`."""
        return self.limit_text if event.reason == "max_rounds" else self.error_text

    def clean_title(self, text: str) -> str:
        """A title for the sidebar and the tab from what the model said ("" when nothing is left).

        Control characters become spaces; invisible formatting ones (bidi overrides, zero-width
        spaces) go: a title must read as it looks. Quotes, a "Title:" prefix and trailing dots
        go too; a long title is cut at a word, with an ellipsis.
        """
        text = "".join(
            " " if unicodedata.category(c) == "Cc" else c
            for c in text
            if unicodedata.category(c) != "Cf"
        )
        title = " ".join(text.split()).strip("\"'`*#. ")
        title = re.sub(r"^(title|name)\s*:\s*", "", title, flags=re.IGNORECASE).strip("\"'. ")
        if len(title) > TITLE_MAX_LENGTH:
            title = title[: TITLE_MAX_LENGTH - 1].rsplit(" ", 1)[0] + "…"
        return title

    # -- runs -----------------------------------------------------------------------------------

    async def respond(self, message_id: Any, *, actor: Any) -> None:
        """Answer the user message `message_id` as `actor`, streaming into a new agent message.

        Text reaches browsers as deltas and the row only on coalesced writes (see
        `AnswerWriter`). Does nothing when the question is gone, already answered (or stopped
        before its run began), or not in one of the actor's conversations (logged).
        """
        question = await self.get_question(message_id, actor=actor)
        if question is None:
            return
        conversation: AbstractConversation = question.conversation
        await self.remove_stale_answers(question)
        if await self.message_model.objects.filter(response_to=question).aexists():
            return  # already answered, or stopped before it started
        history = await self.history(question)
        answer_id = new_id()
        topic = messages_topic(conversation.pk)
        async with AnswerWriter(answer_id, topic=topic, flush=self._flusher(answer_id)) as writer:
            answer = await self.message_model.objects.acreate_answer(
                question, id=answer_id, complete=False
            )
            if answer is None:
                return  # stopped, or answered by a duplicate job, just now
            await amessage_changed(conversation.pk, answer_id)
            await self.release_connections()
            result = await self._stream(writer, history, conversation=conversation, actor=actor)
            if "paused" in result:
                await self._pause(writer, result)
                return  # the job ends: nobody waits for the person
            await writer.finish(complete=True, **result)
        await self.answered(conversation)

    async def resume(self, message_id: Any, answer_id: Any, *, actor: Any) -> None:
        """Continue the unfinished answer `answer_id` to `message_id`, handed over by a worker.

        The row holds exactly the text browsers were shown (the stopping worker wrote it): the
        model gets it back, followed by `continue_prompt`, and what it says is appended at the
        same offset, so nothing is shown twice and nothing is lost. Tool calls already recorded
        are kept. Does nothing when the answer was stopped, finished or removed meanwhile.
        """
        question = await self.get_question(message_id, actor=actor)
        if question is None:
            return
        conversation: AbstractConversation = question.conversation
        answer = await self.message_model.objects.filter(
            pk=answer_id, response_to=question, complete=False
        ).afirst()
        if answer is None:
            return
        history = await self.history(question)
        # The reasoning so far stays on the row (and on the page); a model cannot be handed
        # its own half-finished thoughts, so what it thinks now is appended after them.
        if answer.text.strip():
            history += [
                ChatMessage("assistant", answer.text),
                ChatMessage("user", self.continue_prompt),
            ]
        flush = self._flusher(
            answer.pk, tool_calls=answer.tool_calls, tool_results=answer.tool_results
        )
        topic = messages_topic(conversation.pk)
        async with AnswerWriter(
            answer.pk, topic=topic, flush=flush, text=answer.text, thinking=answer.thinking
        ) as writer:
            await self.release_connections()
            result = await self._stream(writer, history, conversation=conversation, actor=actor)
            if answer.thinking_seconds and "thinking_seconds" in result:
                result["thinking_seconds"] += answer.thinking_seconds
            await writer.finish(complete=True, **result)
        await self.answered(conversation)

    async def continue_approved(self, message_id: Any, batch: Any, *, actor: Any) -> None:
        """Go on with the answer to `message_id` that paused for the approvals of `batch`.

        Once every call of the batch is decided (`ToolApprovalQuerySet.decide`): the approved
        ones run as `actor` (each at most once, also when this run is retried after a crash),
        the model is told of the denied ones, and what it says is appended at the offset where
        the answer paused. An expired call ends the answer with `approval_expired_text`. Does
        nothing when the answer was stopped, superseded or removed meanwhile.
        """
        question = await self.get_question(message_id, actor=actor)
        if question is None or self.approval_model is None:
            return
        conversation: AbstractConversation = question.conversation
        approvals = [
            row
            async for row in self.approval_model.objects.filter(
                batch=batch, **{"message__response_to": question}
            )
        ]
        if not approvals:
            return
        answer = await self.message_model.objects.filter(
            pk=approvals[0].message_id, complete=False
        ).afirst()
        if answer is None:
            return
        status = AbstractToolApproval.Status
        if any(row.status == status.PENDING for row in approvals):
            logger.warning("Not continuing %s: calls of batch %s still wait.", answer.pk, batch)
            return
        if any(row.status == status.EXPIRED for row in approvals):
            await self._end_paused(answer.pk, error=self.approval_expired_text)
            return
        state = approvals[0].run_state
        paused = PausedRun(messages=state["messages"], calls=tuple(state["calls"]))
        decisions = {
            row.call_id: ToolDecision(row.status == status.APPROVED, row.reason)
            for row in approvals
        }
        # From the pause, whatever a run cut off by a crash had added since.
        text = answer.text[: state["text"]]
        thinking = answer.thinking[: state["thinking"]]
        tool_calls = list(answer.tool_calls or [])[: state["tool_calls"]]
        tool_results = list(answer.tool_results or [])[: state["tool_results"]]
        await self.message_model.objects.filter(pk=answer.pk, complete=False).aupdate(
            text=text,
            thinking=thinking,
            tool_calls=tool_calls,
            tool_results=tool_results,
            updated_at=timezone.now(),
        )
        history = await self.history(question)
        flush = self._flusher(answer.pk, tool_calls=tool_calls, tool_results=tool_results)
        topic = messages_topic(conversation.pk)
        async with AnswerWriter(
            answer.pk, topic=topic, flush=flush, text=text, thinking=thinking
        ) as writer:
            await amessage_changed(conversation.pk, answer.pk)  # the card goes: it runs
            await self.release_connections()
            result = await self._stream(
                writer,
                history,
                conversation=conversation,
                actor=actor,
                resume=Resumption(paused, decisions, run_once=self._run_once(approvals)),
            )
            result = _with_earlier_usage(result, state.get("usage") or {})
            if "paused" in result:
                await self._pause(writer, result, earlier=(len(tool_calls), len(tool_results)))
                return
            await writer.finish(complete=True, **result)
        await self.answered(conversation)

    async def _pause(
        self,
        writer: AnswerWriter,
        result: dict[str, Any],
        *,
        earlier: tuple[int, int] = (0, 0),
    ) -> None:
        """Store the approvals a paused run waits for, then write the answer as it stands."""
        assert self.approval_model is not None  # only a responder with one pauses
        paused, requests = result.pop("paused")
        usage = {
            name: result[name]
            for name in (*_USAGE_FIELDS, "thinking_seconds")
            if result.get(name) is not None
        }
        if usage.get("cost") is not None:
            usage["cost"] = str(usage["cost"])
        state = {
            "messages": _storable(paused.messages),
            "calls": list(paused.calls),
            "text": len(result["text"]),
            "thinking": len(writer.thinking),
            "tool_calls": earlier[0] + len(result["tool_calls"]),
            "tool_results": earlier[1] + len(result["tool_results"]),
            "usage": usage,
        }
        batch = new_id()
        deadline = default_expiry()
        await self.approval_model.objects.abulk_create(
            [
                self.approval_model(
                    **{"message_id": writer.message_id},  # the subclass's foreign key
                    call_id=request.call_id,
                    tool_name=request.name,
                    arguments=_storable(request.arguments),
                    description=[list(row) for row in _storable(request.description)],
                    batch=batch,
                    run_state=state,
                    expires_at=deadline,
                )
                for request in requests
            ]
        )
        # The row stays open (`complete=False`); its `message` event shows the approval card.
        await writer.finish(complete=False, **result)

    def _run_once(self, approvals: list[AbstractToolApproval]) -> Any:
        """The guard that runs each approved call at most once (see `Resumption.run_once`)."""
        model = self.approval_model
        assert model is not None
        by_call = {row.call_id: row for row in approvals}

        async def run_once(call_id: str, call: Callable[[], Awaitable[Any]]) -> Any:
            row = by_call.get(call_id)
            if row is None:
                return await call()
            started = await model.objects.filter(pk=row.pk, ran_at__isnull=True).aupdate(
                ran_at=timezone.now()
            )
            if not started:  # a run before this one (cut off by a crash) started it
                fresh = await model.objects.filter(pk=row.pk).afirst()
                if fresh is not None and isinstance(fresh.result, dict):
                    return fresh.result.get("value")
                raise ToolFailed(_MAY_HAVE_RUN.format(name=row.tool_name))
            value = await call()
            try:
                await model.objects.filter(pk=row.pk).aupdate(result={"value": _storable(value)})
            except Exception:  # a result that is not JSON: the call still counts as run
                logger.exception("Could not store the result of approved call %s.", call_id)
            return value

        return run_once

    async def expire_approvals(self) -> int:
        """Expire the requests past `expires_at` and end their answers (`approval_expired_text`).

        Run by the periodic rescue job; returns how many answers ended.
        """
        if self.approval_model is None:
            return 0
        now = timezone.now()
        status = AbstractToolApproval.Status
        answers: set[Any] = set()
        async for row in self.approval_model.objects.overdue(now):
            updated = await self.approval_model.objects.filter(
                pk=row.pk, status=status.PENDING
            ).aupdate(status=status.EXPIRED, decided_at=now, updated_at=now)
            if updated:
                answers.add(row.message_id)
        for answer_id in answers:
            await self._end_paused(answer_id, error=self.approval_expired_text)
        return len(answers)

    def settle_approvals(
        self, conversation_id: Any, *, reason: Literal["superseded", "stopped"]
    ) -> int:
        """End the answers of a conversation that wait for approvals; their calls do not run.

        `"superseded"`: the person sent a new message instead (the answer shows
        `superseded_text`, the model is told with the next question's history); `"stopped"`:
        they pressed Stop (the answer is marked stopped). Sync, inside the caller's transaction
        (`ChatJobs.defer_response`, the stop action). Returns the number of answers ended.
        """
        if self.approval_model is None:
            return 0
        status = AbstractToolApproval.Status
        now = timezone.now()
        with transaction.atomic():
            rows = list(
                self.approval_model.objects.in_conversation(conversation_id)
                .pending()
                .select_for_update(of=("self",))
            )
            if not rows:
                return 0
            self.approval_model.objects.filter(
                pk__in=[row.pk for row in rows], status=status.PENDING
            ).update(status=status.DENIED, reason=reason, decided_at=now, updated_at=now)
            answer_ids = {row.message_id for row in rows}
            fields: dict[str, Any] = (
                {"stopped": True} if reason == "stopped" else {"error": self.superseded_text}
            )
            self.message_model.objects.filter(pk__in=answer_ids, complete=False).update(
                complete=True, updated_at=now, **fields
            )
            for answer_id in answer_ids:
                message_changed(conversation_id, answer_id)
        return len(answer_ids)

    async def _end_paused(self, answer_id: Any, *, error: str) -> None:
        answer = await self.message_model.objects.filter(pk=answer_id).afirst()
        if answer is None:
            return
        ended = await self.message_model.objects.filter(pk=answer_id, complete=False).aupdate(
            complete=True, error=error, updated_at=timezone.now()
        )
        if ended:
            await amessage_changed(answer.conversation_id, answer_id)

    def _flusher(
        self,
        answer_id: Any,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_results: list[dict[str, Any]] | None = None,
    ) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        """The writer's flush callback; a resumed run's tool lists go after the earlier ones."""
        earlier = {"tool_calls": list(tool_calls or []), "tool_results": list(tool_results or [])}

        async def write(text: str, fields: dict[str, Any]) -> None:
            fields = {
                name: [*earlier[name], *value] if earlier.get(name) else value
                for name, value in fields.items()
            }
            # Never after completion, never a shorter text: an older state cannot win.
            thought = Q(thought__lte=len(fields["thinking"])) if "thinking" in fields else Q()
            await (
                self.message_model.objects.filter(pk=answer_id, complete=False)
                .alias(length=Length("text"), thought=Length("thinking"))
                .filter(thought, length__lte=len(text))
                .aupdate(text=text, updated_at=timezone.now(), **fields)
            )
            await self.release_connections()

        return write

    async def _stream(
        self,
        writer: AnswerWriter,
        history: list[ChatMessage],
        *,
        conversation: AbstractConversation,
        actor: Any,
        resume: Resumption | None = None,
    ) -> dict[str, Any]:
        """`stream_answer`, handed over when the worker stops, interrupted when cancelled.

        Raises:
            HandedOver: The worker is stopping: the text so far is in the row, a job should
                continue it (`resume`).
        """
        result: dict[str, Any] | None = None
        try:
            async with handover_scope() as handover:
                result = await self.stream_answer(
                    writer, history, conversation=conversation, actor=actor, resume=resume
                )
        except asyncio.CancelledError:
            # The job was aborted (or the worker gave up waiting): keep what was said.
            await writer.finish(complete=True, error=self.interrupted_text)
            raise
        if handover.handed_over and not writer.stopped:
            # What browsers were shown, and every field saved (a save cut off by the handover
            # included), for the worker that goes on; the row stays open.
            await writer.finish(complete=False)
            raise HandedOver(writer.message_id)
        if result is None:  # stopped while handing over
            result = {"text": writer.text, "stopped": writer.stopped, "error": ""}
        return result

    async def finish_interrupted(self, message_id: Any, *, error: str | None = None) -> None:
        """End the answer to `message_id` with `error` (its run died and will not run again).

        An unfinished answer keeps its text and is completed; a question without an answer gets
        an empty one. `error` defaults to `interrupted_text`.
        """
        error = self.interrupted_text if error is None else error
        messages = self.message_model.objects
        question = await messages.filter(pk=message_id).afirst()
        if question is None:
            return
        answer = await messages.filter(response_to=question).afirst()
        if answer is None:
            answer = await messages.acreate_answer(question, error=error)
        elif not answer.complete:
            await messages.filter(pk=answer.pk, complete=False).aupdate(
                complete=True, error=error, updated_at=timezone.now()
            )
        if answer is not None:
            await amessage_changed(question.conversation_id, answer.pk)

    async def name_conversation(self, conversation_id: Any) -> None:
        """Give an untitled conversation a title from its first messages.

        If the model fails, the start of the first message becomes the title, so the naming job
        never comes back for the same conversation. A title a person set is left alone.
        """
        conversations = self.conversation_model.objects
        conversation = await conversations.needing_title().filter(pk=conversation_id).afirst()
        if conversation is None:
            return
        first = (
            self.message_model.objects.in_conversation(conversation.pk)
            .filter(complete=True)
            .order_by("id")[: self.title_history_limit]
        )
        messages = [m async for m in first]
        history = [self.chat_message(m) for m in messages if m.text.strip()]
        await self.release_connections()  # not while the model thinks
        try:
            title = self.clean_title(
                await agenerate_text(
                    [*history, ChatMessage("user", "Name this conversation.")],
                    system_prompt=self.title_prompt,
                    model=self.get_model(),
                )
            )
        except Exception:
            logger.exception(
                "Naming conversation %s failed; using its first words.", conversation_id
            )
            title = ""
        if not title:
            asked = next((m.text for m in messages if m.source == AbstractMessage.Source.USER), "")
            title = self.clean_title(" ".join(asked.split()[:6])) or self.fallback_title
        updated = await conversations.filter(
            pk=conversation.pk, title="", title_locked=False
        ).aupdate(title=title, updated_at=timezone.now())
        if updated:
            await aconversation_changed(_owner_id(conversation), conversation.pk, "updated")

    async def needs_summary(self, message_id: Any, *, actor: Any) -> bool:
        """Whether the history after the question `message_id` has turns due to be summarised.

        Asked by the answer job once the answer is written: a `True` defers `summarize`.
        """
        question = await self.get_question(message_id, actor=actor)
        if question is None:
            return False
        return bool(self.to_summarise(await self._summary_history(question)))

    async def summarize(self, message_id: Any, *, actor: Any) -> None:
        """Summarise the older turns of the history after the question `message_id`.

        Only in a conversation the actor may answer in (`get_question`). The turns due
        (`to_summarise`) are folded into the latest summary, in chunks of at most twice the budget
        (one model call each, `get_summary_model()`, no tools); each result is stored on the
        last message it covers (`summary`, `summary_count`) and announced, so the page shows
        its "earlier messages summarised" marker. A model failure is logged and leaves the
        history as it was (the next answer's job tries again).
        """
        question = await self.get_question(message_id, actor=actor)
        if question is None:
            return
        rows = await self._summary_history(question)
        fold = self.to_summarise(rows)
        if not fold:
            return
        summarised, _ = _split_at_summary(rows)
        previous = "" if summarised is None else summarised.summary
        covered = rows.index(fold[0])  # messages the previous summary covers
        # A very long fold (the budget was lowered, say) goes in several calls, each at most
        # twice the budget, so the summarising model's context holds it.
        chunk_tokens = 2 * (self.get_history_budget() or 0)
        await self.release_connections()  # not while the model thinks
        for chunk in _chunks(fold, chunk_tokens, self.estimate_tokens):
            try:
                said = await agenerate_text(
                    [ChatMessage("user", self.summary_request(previous, chunk))],
                    system_prompt=self.summary_prompt,
                    model=self.get_summary_model(question.conversation),
                )
            except Exception:
                logger.exception("Summarising the history of %s failed.", message_id)
                return
            summary = _storable(said.strip())
            if not summary:
                logger.warning("The model summarised the history of %s as nothing.", message_id)
                return
            covered += len(chunk)
            last = chunk[-1]
            await self.message_model.objects.filter(pk=last.pk).aupdate(
                summary=summary, summary_count=covered, updated_at=timezone.now()
            )
            await amessage_changed(question.conversation_id, last.pk)
            previous = summary

    def get_summary_model(self, conversation: AbstractConversation) -> str:
        """The model that summarises `conversation`'s older turns (its answering model)."""
        return self.get_conversation_model(conversation)

    def summary_request(self, previous: str, messages: list[AbstractMessage]) -> str:
        """What the summarising model is asked: the previous summary, then the turns to fold."""
        parts = [f"Previous summary:\n{previous}"] if previous else []
        for message in messages:
            who = "Assistant" if message.source == AbstractMessage.Source.AGENT else "User"
            parts.append(f"{who}: {message.text}")
        return "\n\n".join(parts)

    async def _summary_history(self, question: AbstractMessage) -> list[AbstractMessage]:
        """`history_messages(question)` and the question's own answer, once complete."""
        rows = await self.history_messages(question)
        answer = await (
            self.message_model.objects.filter(response_to=question, complete=True)
            .defer("tool_calls", "tool_results")
            .afirst()
        )
        return rows if answer is None else [*rows, answer]

    # -- steps of `respond` ---------------------------------------------------------------------

    async def get_question(self, message_id: Any, *, actor: Any) -> AbstractMessage | None:
        """The user message to answer, with its conversation; `None`: gone, or not the actor's."""
        question = await (
            self.message_model.objects.select_related(_CONVERSATION)
            .filter(pk=message_id, source=AbstractMessage.Source.USER)
            .afirst()
        )
        if question is None:
            return None  # deleted meanwhile
        if not _may_answer(question.conversation, actor):
            logger.error("Refusing to answer %s as %r: not their conversation.", message_id, actor)
            return None
        return question

    async def remove_stale_answers(self, question: AbstractMessage) -> None:
        """Delete an unfinished answer left by a run that died, and tell the pages."""
        stale = self.message_model.objects.filter(response_to=question, complete=False)
        async for answer in stale:
            answer_id = answer.pk  # `delete()` sets `pk` to None
            await answer.adelete()
            await amessage_changed(question.conversation_id, answer_id)

    async def stream_answer(
        self,
        writer: AnswerWriter,
        history: list[ChatMessage],
        *,
        conversation: AbstractConversation,
        actor: Any,
        resume: Resumption | None = None,
    ) -> dict[str, Any]:
        """Run the tool loop into `writer`; returns the fields of the answer's final write.

        When the run paused for approvals, the result also holds `"paused"`: the `PausedRun`
        and the `ApprovalRequestEvent`s (not fields: `respond` stores them as approvals).
        `resume` goes on with a paused run (`continue_approved`).

        Rounds of text around tool calls are kept apart by a blank line; an empty answer gets
        `empty_text` (or `tool_only_text` after tool calls); failures are logged and mapped
        by `error_for` (the text so far is kept). Reasoning goes to the answer's `thinking`
        (`append_thinking`), its stretches apart by a blank line too, and `thinking_seconds`
        is the time from each stretch's first piece to the next text, tool call or end.
        """
        tool_calls: list[dict[str, Any]] = []
        tool_results: list[dict[str, Any]] = []
        error = ""
        after_tool = False
        new_thought = True  # the next reasoning starts a stretch of its own
        clock = _ThinkingClock()
        usage: dict[str, Any] = {}
        requests: list[ApprovalRequestEvent] = []
        paused: PausedRun | None = None
        try:
            async with writer.stoppable():
                events = astream(
                    history,
                    system_prompt=self.get_system_prompt(conversation, actor),
                    model=self.get_conversation_model(conversation),
                    tools=self.get_tools(conversation, actor),
                    actor=actor,
                    resume=resume,
                    can_pause=self.approval_model is not None,
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, ThinkingDeltaEvent):
                            if new_thought and writer.thinking.strip():
                                await writer.append_thinking(_separator(writer.thinking))
                            new_thought = False
                            clock.start()
                            await writer.append_thinking(_storable(event.text))
                            continue
                        new_thought = True
                        clock.stop()
                        if isinstance(event, TextDeltaEvent):
                            if after_tool and writer.text and not writer.text.endswith("\n"):
                                await writer.append("\n\n")
                            after_tool = False
                            await writer.append(_storable(event.text))
                        elif isinstance(event, ToolCallEvent):
                            call = {"id": event.call_id, "name": event.name}
                            # `offset`: where in the text the call was made (the AI SDK's
                            # parts put it there, see `ai_sdk`).
                            arguments = _storable(event.arguments)
                            tool_calls.append(
                                {**call, "arguments": arguments, "offset": len(writer.text)}
                            )
                            await writer.save(tool_calls=tool_calls)
                        elif isinstance(event, ToolResultEvent):
                            after_tool = True
                            tool_results.append(
                                {
                                    "tool_call_id": event.call_id,
                                    "name": event.name,
                                    "content": _storable(event.content),
                                    "is_error": event.is_error,
                                }
                            )
                            await writer.save(tool_results=tool_results)
                        elif isinstance(event, ErrorEvent) and event.reason != "cancelled":
                            logger.warning("Answer %s failed: %s", writer.message_id, event.message)
                            error = self.error_for(event)
                        elif isinstance(event, ApprovalRequestEvent):
                            requests.append(event)
                        elif isinstance(event, DoneEvent):
                            usage = self.usage_fields(event.usage)
                            paused = event.paused
        except Exception:
            logger.exception("Answer %s failed.", writer.message_id)
            error = self.error_text
        clock.stop()
        if clock.seconds is not None:
            usage["thinking_seconds"] = clock.seconds
        text = writer.text
        waiting = paused is not None and not error and not writer.stopped
        if not text.strip() and not error and not writer.stopped and not waiting:
            if tool_calls or tool_results:
                text += self.tool_only_text
            else:
                error = self.empty_text
        return {
            "text": text,
            "tool_calls": tool_calls,
            "tool_results": tool_results,
            "stopped": writer.stopped,
            "error": error,
            **usage,
            **({"paused": (paused, requests)} if waiting else {}),
        }

    def usage_fields(self, usage: Usage) -> dict[str, Any]:
        """The answer's fields recording what its run cost (tokens as reported, and the price)."""
        return {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cost": usage.cost,
            "model_name": usage.model_name[:MODEL_NAME_MAX_LENGTH],
        }

    async def answered(self, conversation: AbstractConversation) -> None:
        """After an answer: the conversation moves to the top of its owner's list."""
        await self.conversation_model.objects.filter(pk=conversation.pk).aupdate(
            updated_at=timezone.now()
        )
        await aconversation_changed(_owner_id(conversation), conversation.pk, "updated")

    async def release_connections(self) -> None:
        """Give pooled connections back while the run waits (see `release_connections`)."""
        await sync_to_async(release_connections)()


_USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "cost",
)

_MAY_HAVE_RUN = (
    "Tool {name!r} was started before an interruption and may have been carried out: it was "
    "not run again. Tell the user to check before asking again."
)


def _with_earlier_usage(result: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """`result` with the usage of the run's rounds before its pause added (what it all cost)."""
    if not earlier:
        return result
    merged = dict(result)
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"):
        merged[name] = int(earlier.get(name) or 0) + int(result.get(name) or 0)
    if "cost" in result or "cost" in earlier:
        before = earlier.get("cost")
        now = result.get("cost")
        merged["cost"] = None if before is None or now is None else Decimal(before) + now
    if earlier.get("thinking_seconds"):
        merged["thinking_seconds"] = round(
            float(earlier["thinking_seconds"]) + float(result.get("thinking_seconds") or 0), 1
        )
    return merged


def _owner_field_attname(conversation: AbstractConversation) -> str | None:
    owner_field = conversation.owner_field
    if owner_field is None:
        return None
    field = conversation._meta.get_field(owner_field)
    if not isinstance(field, models.ForeignKey):
        raise ConfigurationError(
            f"{type(conversation).__name__}.owner_field is {owner_field!r}, which is not a "
            "foreign key: name the owner's foreign key, or set it to None for no-user mode."
        )
    return field.attname


def _owner_id(conversation: AbstractConversation) -> Any:
    attname = _owner_field_attname(conversation)
    return None if attname is None else getattr(conversation, attname)


def _may_answer(conversation: AbstractConversation, actor: Any) -> bool:
    attname = _owner_field_attname(conversation)
    if attname is None:
        return True  # no-user mode: everyone shares every conversation
    return signed_in(actor) and getattr(conversation, attname) == actor.pk


class _ThinkingClock:
    """How long a run spent thinking: from each stretch's first piece to what came next."""

    def __init__(self) -> None:
        self.seconds: float | None = None
        self._since: float | None = None

    def start(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def stop(self) -> None:
        if self._since is not None:
            spent = time.monotonic() - self._since
            self.seconds = round((self.seconds or 0.0) + spent, 1)
            self._since = None


def _separator(text: str) -> str:
    return "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")


def _split_at_summary(
    rows: list[AbstractMessage],
) -> tuple[AbstractMessage | None, list[AbstractMessage]]:
    """The latest message of `rows` holding a summary (if any), and the messages after it."""
    for index in range(len(rows) - 1, -1, -1):
        if rows[index].summary:
            return rows[index], rows[index + 1 :]
    return None, rows


def _chunks(
    messages: list[AbstractMessage], tokens: int, estimate: Callable[[str], int]
) -> list[list[AbstractMessage]]:
    """`messages` in runs of at most `tokens` (at least one message each): one model call each."""
    chunks: list[list[AbstractMessage]] = [[]]
    used = 0
    for message in messages:
        size = estimate(message.text)
        if chunks[-1] and used + size > tokens:
            chunks.append([])
            used = 0
        chunks[-1].append(message)
        used += size
    return [chunk for chunk in chunks if chunk]


def _read_file(attachment: AbstractAttachment) -> bytes:
    # Through the storage (S3 and friends have no path); a file gone from it sends nothing.
    try:
        with attachment.file.open("rb") as file:
            data: bytes = file.read()
            return data
    except OSError:
        logger.warning("Attachment %s is missing from its storage.", attachment.pk)
        return b""


def _storable(value: Any) -> Any:
    # PostgreSQL stores no NUL character in text or JSON; a model (or a tool) may still emit one.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value
