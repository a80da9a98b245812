"""Abstract chat models and their querysets: the model side of the chat's mechanics.

A generated app's `models.py` subclasses `AbstractConversation` and `AbstractMessage`, adding
what is its own: the owner foreign key, the message's `conversation` foreign key (with
`related_name="messages"`) and the indexes. The rules every caller relies on live here once:
who sees which rows (`for_actor`, also the default scope of `ModelTools`), which conversations
need a title, which questions need an answer, and the one answer per question
(`create_answer`: the database refuses a second one). `AbstractFeedback` is a person's rating of
an answer (`FeedbackQuerySet.give`: one per person per answer, changed in place).
`AbstractShareLink` is a read-only link to a snapshot of a conversation (`ShareLinkQuerySet.share`,
`by_token`, `revoke`). `AbstractAttachment` is a file attached to a person's message, kept in
Django's storage and removed from it with its row.

Longer than our usual modules: every abstract model a generated app subclasses lives here with
its queryset, so that an app's `models.py` imports from one place.

Example:
    ```python
    class Conversation(AbstractConversation):
        user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)


    class Message(AbstractMessage):
        conversation = models.ForeignKey(
            Conversation, on_delete=models.CASCADE, related_name="messages"
        )
    ```

The app `django_ai_chat` holds no concrete model and therefore no migration.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Coalesce
from django.db.models.signals import class_prepared, post_delete
from django.utils import timezone
from django.utils.translation import gettext
from uuid_utils.compat import uuid7

from django_ai_chat.attachments import (
    Upload,
    attachment_storage,
    attachment_upload_to,
    format_size,
    kind_of,
)
from django_ai_chat.branches import TREE_FIELDS, Branches, BranchTree, link_linear_history

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager
    from django.db.models.options import Options

__all__ = [
    "FEEDBACK_NOTE_MAX_LENGTH",
    "MODEL_NAME_MAX_LENGTH",
    "SHARE_TOKEN_BYTES",
    "TITLE_AFTER_MESSAGES",
    "TITLE_DELAY",
    "TITLE_MAX_LENGTH",
    "AbstractAttachment",
    "AbstractConversation",
    "AbstractFeedback",
    "AbstractMessage",
    "AbstractShareLink",
    "AttachmentQuerySet",
    "ConversationQuerySet",
    "FeedbackQuerySet",
    "MessageQuerySet",
    "ShareLinkQuerySet",
    "SharedMessage",
    "conversation_model_of",
    "new_id",
    "new_share_token",
    "signed_in",
]

TITLE_MAX_LENGTH: Final = 120
"""Longest conversation title, in characters."""

MODEL_NAME_MAX_LENGTH: Final = 100
"""Longest model name stored with an answer, in characters."""

TITLE_AFTER_MESSAGES: Final = 2
"""A conversation with this many messages is named at once: after its first exchange.

The seed (ash_ai) waits for more than 3 messages; until then the sidebar shows a row of
"New chat" entries nobody can tell apart, while the first question and its answer nearly always
say what a conversation is about (the chats people compare us with name it then too)."""

TITLE_DELAY: Final = timedelta(minutes=10)
"""A conversation of 2 or more messages but fewer than `TITLE_AFTER_MESSAGES` is named this long
after it started (none while `TITLE_AFTER_MESSAGES` is 2: the rule stays for a higher one)."""

FEEDBACK_NOTE_MAX_LENGTH: Final = 2000
"""Longest note a person may leave with a rating, in characters."""

_C = TypeVar("_C", bound="AbstractConversation")
_M = TypeVar("_M", bound="AbstractMessage")
_F = TypeVar("_F", bound="AbstractFeedback")
_L = TypeVar("_L", bound="AbstractShareLink")
_A = TypeVar("_A", bound="AbstractAttachment")
_MESSAGE: Final = "message"  # a field of the concrete attachment model only


def new_id() -> uuid.UUID:
    """A time-ordered UUID v7: ids sort by creation time, which history pagination relies on."""
    return uuid7()


def signed_in(actor: Any) -> bool:
    """Whether `actor` is someone rows may belong to (not `None`, not an anonymous user)."""
    return actor is not None and bool(getattr(actor, "is_authenticated", False))


def conversation_model_of(message_model: type[models.Model]) -> type[AbstractConversation]:
    """The model `message_model.conversation` points to (a message or a share link model).

    Raises:
        ImproperlyConfigured: That field is not a foreign key to an `AbstractConversation`.
    """
    # The foreign key is declared by the concrete subclass (`AbstractMessage` has none).
    options: Options[Any] = message_model._meta
    related = options.get_field("conversation").related_model
    if not (isinstance(related, type) and issubclass(related, AbstractConversation)):
        raise ImproperlyConfigured(
            f"{message_model.__name__}.conversation must be a foreign key to a "
            f"subclass of AbstractConversation, not {related!r}."
        )
    return related


class ConversationQuerySet(models.QuerySet[_C]):
    """Conversations, scoped with `for_actor`."""

    def for_actor(self, actor: Any) -> Self:
        """The conversations `actor` may see: those it owns (all of them in no-user mode).

        The owner is the model's `owner_field`; `None` there means no-user mode (everyone shares
        every conversation). With an owner field, `None` or an anonymous user sees none.
        """
        owner_field = self.model.owner_field
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{owner_field: actor})

    def with_usage(self) -> Self:
        """Annotated with what their answers cost: `total_tokens` (input + output), `total_cost`.

        `total_cost` is `None` for a conversation without a priced answer.
        """
        return self.annotate(
            total_tokens=Coalesce(
                models.Sum(models.F("messages__input_tokens"))
                + models.Sum(models.F("messages__output_tokens")),
                0,
            ),
            total_cost=models.Sum("messages__cost"),
        )

    def needing_title(self) -> Self:
        """Untitled ones of `TITLE_AFTER_MESSAGES`+ messages, or of 2+ and `TITLE_DELAY` old."""
        return (
            self.filter(title="", title_locked=False)
            .annotate(message_count=models.Count("messages"))
            .filter(
                models.Q(message_count__gte=TITLE_AFTER_MESSAGES)
                | models.Q(message_count__gt=1, inserted_at__lt=timezone.now() - TITLE_DELAY)
            )
        )


class MessageQuerySet(models.QuerySet[_M]):
    """Messages, scoped with `for_actor`; `create_answer` makes the one answer to a question."""

    def for_actor(self, actor: Any) -> Self:
        """The messages of the conversations `actor` may see (see `ConversationQuerySet`)."""
        owner_field = _conversation_model(self.model).owner_field
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{f"conversation__{owner_field}": actor})

    def in_conversation(self, conversation_id: Any) -> Self:
        """The messages of one conversation (by id)."""
        return self.filter(**{"conversation_id": conversation_id})  # declared by subclasses

    def needing_response(self) -> Self:
        """User messages that no agent message answers yet (not even a stopped or failed one)."""
        return self.filter(source=AbstractMessage.Source.USER, response__isnull=True)

    def usage_totals(self) -> dict[str, Any]:
        """What these messages' answers cost, summed.

        Keys: `answers`, `input_tokens`, `output_tokens`, `cache_read_tokens`,
        `reasoning_tokens` (0 when none), `cost` (`None` when none is priced).
        """
        return self.aggregate(**_USAGE_TOTALS)

    async def ausage_totals(self) -> dict[str, Any]:
        """Async `usage_totals`."""
        return await self.aaggregate(**_USAGE_TOTALS)

    def running(self) -> Self:
        """Agent messages still streaming (`complete=False`)."""
        return self.filter(source=AbstractMessage.Source.AGENT, complete=False)

    def create_answer(self, question: AbstractMessage, **fields: Any) -> _M | None:
        """Create the agent message answering `question`, or `None` when it has one already.

        `fields` are set on the new row (`text` defaults to `""`). The database allows one answer
        per question (`response_to` is one-to-one): a duplicate job, or a stop racing the job,
        loses here and gets `None`. A savepoint keeps the caller's transaction usable.
        """
        try:
            with transaction.atomic(using=self.db):
                answer = self.create(
                    conversation_id=question.conversation_id,
                    response_to=question,
                    parent=question,
                    activated_at=timezone.now(),
                    source=AbstractMessage.Source.AGENT,
                    **{"text": "", **fields},
                )
                # Questions sent while this one waited follow its answer, not it: otherwise
                # they would be siblings of the answer.
                self.filter(parent=question, source=AbstractMessage.Source.USER).update(
                    parent=answer
                )
                return answer
        except IntegrityError:
            return None

    async def acreate_answer(self, question: AbstractMessage, **fields: Any) -> _M | None:
        """Async `create_answer` (one thread hop: the savepoint cannot span several)."""
        return await sync_to_async(self.create_answer)(question, **fields)

    # Branches (see `django_ai_chat.branches`) ------------------------------------------------

    def tree(self, conversation_id: Any) -> BranchTree:
        """The tree of the conversation's messages (one query of their ids and links)."""
        rows = self.model._default_manager.filter(**{"conversation_id": conversation_id})
        return BranchTree.from_rows(rows.values_list(*TREE_FIELDS))

    async def atree(self, conversation_id: Any) -> BranchTree:
        """Async `tree`."""
        return await sync_to_async(self.tree)(conversation_id)

    def on_active_path(self, conversation_id: Any, *, tree: BranchTree | None = None) -> list[_M]:
        """These messages of the conversation that are on its active path, in its order.

        The path is the person's current branch: what the page shows and the model is sent.
        Pass `tree` when you have it already.
        """
        tree = self.tree(conversation_id) if tree is None else tree
        path = tree.active_path()
        rows = {
            m.pk: m for m in self.filter(**{"conversation_id": conversation_id, "pk__in": path})
        }
        return [rows[pk] for pk in path if pk in rows]

    def add_question(self, conversation: AbstractConversation, **fields: Any) -> _M:
        """A new user message at the end of the conversation's active path.

        Locks the conversation's row, so that two questions sent at once follow one another
        instead of becoming siblings. `fields` are set on the row (`text`, ...).
        """
        with transaction.atomic(using=self.db):
            type(conversation)._default_manager.select_for_update().filter(
                pk=conversation.pk
            ).first()
            leaf = self.tree(conversation.pk).leaf()
            return self.create(
                conversation=conversation,
                parent_id=leaf,
                activated_at=timezone.now(),
                source=AbstractMessage.Source.USER,
                **fields,
            )

    def add_sibling(self, message: AbstractMessage, **fields: Any) -> _M:
        """A new user message in place of `message` (an edit): same parent, now the active one.

        `message` and what followed it stay, a branch the person can switch back to.
        """
        if message.source != AbstractMessage.Source.USER:
            raise ValidationError(
                gettext("Only questions can be edited, not answers."), code="invalid"
            )
        with transaction.atomic(using=self.db):
            parent = self._linked_parent(message)
            return self.create(
                conversation_id=message.conversation_id,
                parent_id=parent,
                activated_at=timezone.now(),
                source=AbstractMessage.Source.USER,
                **fields,
            )

    def detach_answer(self, question: AbstractMessage) -> _M | None:
        """Make room for a new answer to `question`, keeping the current one as a sibling.

        The answer stays in the tree (its `parent` is the question) but no longer holds the
        question's one `response_to` slot, so `respond` answers it again. Returns the answer
        detached, `None` when there was none. An answer still streaming is the caller's to stop.
        """
        with transaction.atomic(using=self.db):
            link_linear_history(self.model, question.conversation_id)
            answer = self.select_for_update().filter(response_to=question).first()
            if answer is None:
                return None
            self.filter(pk=answer.pk).update(response_to=None, parent=question)
            return answer

    def activate(self, message: AbstractMessage) -> None:
        """Make `message` the active one among its siblings (the person switched to it).

        The branch under it comes back as it was left: each message's own active child is kept.
        An answer takes its question's one `response_to` slot back from the answer holding it
        (a running holder is the caller's to stop first).
        """
        with transaction.atomic(using=self.db):
            parent = self._linked_parent(message)
            fields: dict[str, Any] = {"activated_at": timezone.now()}
            if message.source == AbstractMessage.Source.AGENT and parent is not None:
                question = self.select_for_update().filter(
                    pk=parent, source=AbstractMessage.Source.USER
                )
                if question.exists():
                    self.filter(response_to_id=parent).exclude(pk=message.pk).update(
                        response_to=None
                    )
                    fields["response_to_id"] = parent
            self.filter(pk=message.pk).update(**fields)

    def _linked_parent(self, message: AbstractMessage) -> Any:
        # Old linear rows are linked first: a new row sorted between them must not change what
        # they follow.
        link_linear_history(self.model, message.conversation_id)
        return (
            self.model._default_manager.filter(pk=message.pk)
            .values_list("parent_id", flat=True)
            .get()
        )


_USAGE_TOTALS: Final[dict[str, Any]] = {
    "answers": models.Count("pk", filter=models.Q(source="agent")),
    **{
        name: Coalesce(models.Sum(name), 0)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
    },
    "cost": models.Sum("cost"),
}


class AbstractConversation(models.Model):
    """A conversation: its title and when it was last active. Subclass it, adding the owner.

    Attributes:
        owner_field: Name of the foreign key to the owner (`"user"`), or `None` for no-user mode.
        search_config: PostgreSQL text search configuration of `django_ai_chat.search` (the
            subclass's GIN indexes on `title` and the messages' `text` must use the same).
    """

    owner_field: ClassVar[str | None] = "user"
    search_config: ClassVar[str] = "english"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True, default="")
    title_locked = models.BooleanField(
        default=False, help_text="Set when a person renamed it: the naming job leaves it alone."
    )
    ai_model = models.CharField(
        max_length=MODEL_NAME_MAX_LENGTH,
        blank=True,
        default="",
        help_text="Chosen from AI_CHAT_MODELS; empty: the responder's model.",
    )
    inserted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    if TYPE_CHECKING:
        messages: RelatedManager[AbstractMessage]

    class Meta:
        """Subclasses extend it: `class Meta(AbstractConversation.Meta): indexes = [...]`."""

        abstract = True
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"

    @property
    def needs_title(self) -> bool:
        """Whether the naming job should give it a title (same rule as `needing_title`)."""
        if self.title or self.title_locked:
            return False
        count = self.messages.count()
        old = self.inserted_at < timezone.now() - TITLE_DELAY
        return count >= TITLE_AFTER_MESSAGES or (count > 1 and old)


class AbstractMessage(models.Model):
    """A message: a person's question (`USER`) or the agent's answer (`AGENT`) to one.

    Subclass it, adding `conversation` (a foreign key with `related_name="messages"`).
    """

    class Source(models.TextChoices):
        """Who wrote it: the person (`USER`) or the model (`AGENT`)."""

        USER = "user"
        AGENT = "agent"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # Required but may be empty (an answer starts empty); stored exactly as written.
    text = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    tool_results = models.JSONField(default=list, blank=True)
    # What the model thought before (and between) its answer's words, as the provider streamed
    # it (`ThinkingPart`s): shown collapsed above the answer, never sent back to the model.
    thinking = models.TextField(
        blank=True, default="", help_text="The model's reasoning, as the provider streamed it."
    )
    thinking_seconds = models.FloatField(
        null=True, blank=True, help_text="How long the model thought before answering."
    )
    source = models.CharField(max_length=5, choices=Source.choices, default=Source.USER)
    complete = models.BooleanField(default=True, help_text="False while an answer streams.")
    stopped = models.BooleanField(default=False, help_text="The person stopped the answer.")
    error = models.CharField(max_length=500, blank=True, default="")
    # One answer per user message: the database refuses a second one (a duplicate job, or a
    # stop racing the job), which is what keeps answers from being produced twice.
    response_to = models.OneToOneField(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="response"
    )
    # What the answer's run cost, as the provider reported it (0 for questions and for runs that
    # never reached the provider); `cost` in US dollars, `None` when the model has no known price.
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(
        default=0, help_text="Input tokens read from the provider's prompt cache."
    )
    reasoning_tokens = models.PositiveIntegerField(
        default=0, help_text="Output tokens the model spent thinking."
    )
    cost = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, help_text="US dollars."
    )
    model_name = models.CharField(max_length=MODEL_NAME_MAX_LENGTH, blank=True, default="")
    # A long history's older turns, summarised (`Responder.summarize`): the summary covers this
    # message and every one before it in the conversation, so it is valid wherever this message
    # is in the history, and a later summary, on a later message, extends it.
    summary = models.TextField(
        blank=True, default="", help_text="Summary of the conversation up to this message."
    )
    summary_count = models.PositiveIntegerField(
        default=0, help_text="Messages the summary covers (this one included)."
    )
    # Branches (`django_ai_chat.branches`): the message this one follows, and when it was last
    # made the active one among its siblings. Both empty on rows older than branches: they follow
    # the message before them, as they always did (no data migration needed).
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        help_text="The message this one follows (its siblings share it).",
    )
    activated_at = models.DateTimeField(
        null=True, blank=True, help_text="The newest among siblings is on the active path."
    )
    inserted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageQuerySet.as_manager()

    # Set by `branches.attach_branches` on the messages a page shows.
    branches: Branches | None = None

    if TYPE_CHECKING:
        # Declared by the subclass (a foreign key named `conversation`).
        conversation_id: Any
        response_to_id: Any
        parent_id: Any

        @property
        def conversation(self) -> AbstractConversation:
            """The conversation the message belongs to."""

    class Meta:
        """Subclasses extend it: `class Meta(AbstractMessage.Meta): indexes = [...]`."""

        abstract = True
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source}: {self.text[:50]}"

    @property
    def needs_response(self) -> bool:
        """A user message without an answer (not even a stopped or failed one)."""
        if self.source != self.Source.USER:
            return False
        return not type(self)._default_manager.filter(response_to_id=self.pk).exists()


class FeedbackQuerySet(models.QuerySet[_F]):
    """Ratings of answers, scoped with `for_actor`; `give` records (or changes) one."""

    def for_actor(self, actor: Any) -> Self:
        """The ratings `actor` gave (every rating in no-user mode, none for `None` otherwise)."""
        owner_field = self.model.owner_field
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{owner_field: actor})

    def give(
        self, answer: AbstractMessage, actor: Any, *, rating: str, note: str = ""
    ) -> _F | None:
        """Record `actor`'s rating of `answer`, replacing theirs if any; `rating=""` removes it.

        One rating per person per answer (the generated model's unique constraint); the caller
        checks that `actor` may see `answer` (an action's `for_actor` lookup). Returns the rating,
        or `None` when it was removed.

        Raises:
            ValidationError: `answer` is not the agent's, or `rating` is not one of `Rating`.
        """
        if answer.source != AbstractMessage.Source.AGENT:
            raise ValidationError(gettext("Only answers can be rated."), code="invalid")
        if rating and rating not in AbstractFeedback.Rating.values:
            raise ValidationError(
                gettext("Unknown rating %(rating)s: use one of %(choices)s.")
                % {"rating": repr(rating), "choices": repr(AbstractFeedback.Rating.values)},
                code="invalid_choice",
            )
        owner_field = self.model.owner_field
        lookup: dict[str, Any] = {"message": answer}
        if owner_field is not None:
            if not signed_in(actor):
                raise ValidationError(gettext("Sign in to rate an answer."), code="anonymous")
            lookup[owner_field] = actor
        if not rating:
            self.filter(**lookup).delete()
            return None
        with transaction.atomic(using=self.db):
            feedback, _ = self.select_for_update().update_or_create(
                **lookup, defaults={"rating": rating, "note": note}
            )
        return feedback


class AbstractFeedback(models.Model):
    """A person's rating of an answer (thumbs up or down) with an optional note.

    Subclass it, adding `message` (a foreign key to the message model with
    `related_name="feedback"`), the owner foreign key named by `owner_field`, and a unique
    constraint on both: one rating per person per answer, changed in place.

    Attributes:
        owner_field: Name of the foreign key to the person who rated, or `None` (no-user mode:
            one rating per answer).
    """

    class Rating(models.TextChoices):
        """Thumbs up or down."""

        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    owner_field: ClassVar[str | None] = "user"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    rating = models.CharField(max_length=4, choices=Rating.choices)
    note = models.TextField(blank=True, default="", max_length=FEEDBACK_NOTE_MAX_LENGTH)
    inserted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = FeedbackQuerySet.as_manager()

    if TYPE_CHECKING:
        message_id: Any

    class Meta:
        """Subclasses extend it: `class Meta(AbstractFeedback.Meta): constraints = [...]`."""

        abstract = True
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.message_id}"


SHARE_TOKEN_BYTES: Final = 24
"""Random bytes in a share link's token: 192 bits, written as 32 URL-safe characters."""

_SHARE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_share_token() -> str:
    """A fresh, unguessable share-link token (`secrets.token_urlsafe` of `SHARE_TOKEN_BYTES`)."""
    return secrets.token_urlsafe(SHARE_TOKEN_BYTES)


@dataclass(frozen=True)
class SharedMessage:
    """One message of a shared snapshot, as the read-only page shows it.

    Attributes:
        id: The message's id (a string), as it was in the conversation.
        source: `"user"` or `"agent"` (`AbstractMessage.Source`).
        text: The text as written (an answer's Markdown: render it with `|markdown`, sanitised).
        tool_names: Names of the tools the answer called (their arguments and results are not
            shared: they may hold the owner's data the answer did not show).
        error: The answer's error text, `""` when none.
        stopped: Whether the owner stopped the answer.
    """

    id: str
    source: str
    text: str
    tool_names: tuple[str, ...] = ()
    error: str = ""
    stopped: bool = False


class ShareLinkQuerySet(models.QuerySet[_L]):
    """Share links, scoped with `for_actor`; `share` makes or refreshes one, `by_token` opens it."""

    def for_actor(self, actor: Any) -> Self:
        """The links of the conversations `actor` may see (its own; all of them in no-user mode)."""
        owner_field = _conversation_model(self.model).owner_field
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{f"conversation__{owner_field}": actor})

    def share(self, conversation: AbstractConversation, messages: Iterable[Any]) -> _L:
        """Share `conversation` as `messages` are now: its link, made or with a fresh snapshot.

        The link is a snapshot: the title and the complete messages given (an answer still
        streaming is left out), copied at this call; nothing said, edited or deleted later shows.
        One link per conversation: sharing again replaces the snapshot and keeps the token, so
        the link already sent shows the newer one. The caller checks that the actor owns the
        conversation (an action's `for_actor` lookup).
        """
        snapshot = [self.model.snapshot(message) for message in messages if message.complete]
        link, _ = self.update_or_create(
            conversation=conversation,
            defaults={"title": conversation.title, "messages": snapshot},
        )
        return link

    def revoke(self, conversation: AbstractConversation) -> bool:
        """Take the conversation's link back (it 404s from now on); whether there was one."""
        deleted, _ = self.filter(conversation=conversation).delete()
        return bool(deleted)

    def by_token(self, token: object) -> _L:
        """The link with this token, for whoever holds it.

        Raises:
            DoesNotExist: No such link: never made, revoked, or not a token at all.
        """
        if not isinstance(token, str) or not _SHARE_TOKEN.fullmatch(token):
            raise self.model.DoesNotExist("No such share link.")
        return self.get(token=token)


class AbstractShareLink(models.Model):
    """A read-only link to a snapshot of a conversation, for people other than its owner.

    Subclass it, adding `conversation` (a `OneToOneField` to the conversation model with
    `related_name="share_link"`): one link per conversation, gone with it. The owner is the
    conversation's (`for_actor`). The token is the link's secret: `secrets.token_urlsafe` of
    `SHARE_TOKEN_BYTES` (192 bits), stored as it is under a unique index, so the owner can copy
    the link again (the conversation it opens sits in the same database: a hash would hide nothing
    from someone who reads it). Revoking deletes the row, snapshot and all.
    """

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True, default="")
    messages = models.JSONField(
        default=list, blank=True, help_text="The shared messages, copied when shared."
    )
    inserted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(
        auto_now=True, db_index=True, help_text="When the snapshot was taken."
    )

    objects = ShareLinkQuerySet.as_manager()

    if TYPE_CHECKING:
        conversation_id: Any

    class Meta:
        """Subclasses extend it: `class Meta(AbstractShareLink.Meta): ...`."""

        abstract = True
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"Share link of {self.title or self.conversation_id}"

    @classmethod
    def snapshot(cls, message: Any) -> dict[str, Any]:
        """What a share keeps of `message` (JSON): override to keep more or less.

        By default the text, the names of the tools an answer called (not their arguments or
        results), the error text and whether it was stopped.
        """
        from django_ai_chat.ui import extract_tools  # ui reads settings: imported when used

        return {
            "id": str(message.pk),
            "source": str(message.source),
            "text": message.text,
            "tool_names": [call.name for call in extract_tools(message).tool_calls],
            "error": message.error,
            "stopped": bool(message.stopped),
        }

    @property
    def shared_messages(self) -> list[SharedMessage]:
        """The snapshot's messages, oldest first (entries that are not messages are skipped)."""
        shared = []
        for entry in self.messages if isinstance(self.messages, list) else []:
            if (
                not isinstance(entry, dict)
                or entry.get("source") not in AbstractMessage.Source.values
            ):
                continue
            shared.append(
                SharedMessage(
                    id=str(entry.get("id", "")),
                    source=str(entry["source"]),
                    text=str(entry.get("text", "")),
                    tool_names=tuple(map(str, entry.get("tool_names") or ())),
                    error=str(entry.get("error") or ""),
                    stopped=bool(entry.get("stopped")),
                )
            )
        return shared


class AttachmentQuerySet(models.QuerySet[_A]):
    """Attached files, scoped with `for_actor`; `attach` stores uploads on a message."""

    def for_actor(self, actor: Any) -> Self:
        """The files of the messages `actor` may see (those of its own conversations)."""
        message_model = self.model._meta.get_field(_MESSAGE).related_model
        if not isinstance(message_model, type):
            raise TypeError(f"{self.model.__name__}.message must be a foreign key.")
        owner_field = _conversation_model(message_model).owner_field
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{f"message__conversation__{owner_field}": actor})

    def attach(self, message: AbstractMessage, uploads: list[Upload]) -> list[_A]:
        """Store `uploads` (checked by `forms.clean_attachments`) as files of `message`.

        Each file goes to `attachment_storage()` under a name of ours. Call it last in the
        transaction that creates `message`: a file already stored when a later one fails is
        removed again.
        """
        created: list[_A] = []
        try:
            for upload in uploads:
                attachment = self.model(
                    message=message,
                    name=upload.name,
                    content_type=upload.media_type,
                    size=upload.size,
                    text=upload.text,
                    pages=upload.pages,
                )
                attachment.file.save(upload.name, upload.file, save=False)
                attachment.save(force_insert=True)
                created.append(attachment)
        except BaseException:
            for attachment in created:
                if attachment.file.name:
                    attachment.file.storage.delete(attachment.file.name)
            raise
        return created

    def copy_to(self, message: AbstractMessage) -> list[_A]:
        """These files, attached to `message` too (an edited question keeps its files).

        The copies share the stored files: a file leaves the storage with its last row.
        """
        fields = ("file", "name", "content_type", "size", "text", "pages")
        copies = [
            self.model(message=message, **{name: getattr(row, name) for name in fields})
            for row in self.order_by("id")
        ]
        return self.bulk_create(copies)


class AbstractAttachment(models.Model):
    """A file attached to a person's message: an image, a PDF or a text file.

    Subclass it, adding `message` (a foreign key to the message model with
    `related_name="attachments"`, `on_delete=CASCADE`). The file is in
    `attachment_storage()` (Django's storage API); deleting the row (or its message, or its
    conversation) deletes the file from the storage once the transaction commits (and no copy
    of the row, `AttachmentQuerySet.copy_to`, still holds it). Whom it
    belongs to follows its message: `for_actor` scopes by the conversation's owner.
    """

    class SentAs(models.TextChoices):
        """How the model received it (set when the question is answered)."""

        FILE = "file", "As a file"
        TEXT = "text", "As text"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    file = models.FileField(
        upload_to=attachment_upload_to, storage=attachment_storage, max_length=255
    )
    name = models.CharField(max_length=255, help_text="The name it was uploaded under.")
    content_type = models.CharField(max_length=100, help_text="Read from the content.")
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    text = models.TextField(blank=True, default="", help_text="Extracted text (PDF, text files).")
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="Pages of a PDF.")
    sent_as = models.CharField(max_length=4, choices=SentAs.choices, blank=True, default="")
    inserted_at = models.DateTimeField(auto_now_add=True)

    objects = AttachmentQuerySet.as_manager()

    if TYPE_CHECKING:
        message_id: Any

    class Meta:
        """Subclasses extend it: `class Meta(AbstractAttachment.Meta): ...`."""

        abstract = True
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        """`"image"`, `"pdf"` or `"text"`."""
        return kind_of(self.content_type)

    @property
    def size_display(self) -> str:
        """The size as a person reads it ("12.3 KB")."""
        return format_size(self.size)


def _delete_file(sender: type[models.Model], instance: AbstractAttachment, **kwargs: Any) -> None:
    # After the commit: a rolled-back delete keeps its file. Cascades send this per row too.
    name, storage = instance.file.name, instance.file.storage
    if not name:
        return

    def delete() -> None:
        # Copies (an edited question's) share the file: it goes with the last of them.
        if not sender._default_manager.filter(file=name).exists():
            storage.delete(name)

    transaction.on_commit(delete, using=kwargs.get("using"), robust=True)


def _connect_file_deletion(sender: type[models.Model], **kwargs: Any) -> None:
    # Per concrete model, not for every model: a receiver for all senders would turn every
    # fast (single-query) cascade delete in the project into a row-by-row one.
    if issubclass(sender, AbstractAttachment) and not sender._meta.abstract:
        post_delete.connect(_delete_file, sender=sender, dispatch_uid=f"{sender._meta.label}.file")


class_prepared.connect(_connect_file_deletion)


def _conversation_model(message_model: type[models.Model]) -> type[AbstractConversation]:
    related = message_model._meta.get_field("conversation").related_model
    if not (isinstance(related, type) and issubclass(related, AbstractConversation)):
        raise TypeError(
            f"{message_model.__name__}.conversation must be a foreign key to a subclass of "
            f"AbstractConversation, not {related!r}."
        )
    return related
