"""Models of the runtime's tests: notes exposed as tools, and a concrete chat."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models

from django_ai_chat.approvals import AbstractToolApproval
from django_ai_chat.models import (
    AbstractAttachment,
    AbstractConversation,
    AbstractFeedback,
    AbstractMessage,
    AbstractShareLink,
)


class NoteQuerySet(models.QuerySet["Note"]):
    def for_actor(self, actor: Any) -> NoteQuerySet:
        """The notes `actor` owns (none for anonymous users and in no-user mode)."""
        if actor is None or not getattr(actor, "is_authenticated", False):
            return self.none()
        return self.filter(owner=actor)


class Note(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    title = models.CharField(max_length=120, help_text="A short title.")
    body = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    priority = models.IntegerField(default=0)
    stars = models.PositiveSmallIntegerField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    due_at = models.DateTimeField(null=True, blank=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = NoteQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class Reminder(models.Model):
    """A reminder on a note: a writable foreign key to a row-scoped model."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reminders"
    )
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="reminders")
    text = models.CharField(max_length=120)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text


class Conversation(AbstractConversation):
    """A concrete conversation, as a generated app declares it (the runtime's answering tests)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_conversations"
    )

    class Meta(AbstractConversation.Meta):
        indexes = [models.Index(fields=["user", "-updated_at"], name="testapp_conv_recent")]


class Message(AbstractMessage):
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )

    class Meta(AbstractMessage.Meta):
        indexes = [
            models.Index(fields=["conversation", "-id"], name="testapp_msg_history"),
            GinIndex(SearchVector("text", config="english"), name="testapp_msg_search"),
        ]


class Feedback(AbstractFeedback):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_feedback"
    )

    class Meta(AbstractFeedback.Meta):
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="testapp_feedback_once")
        ]


class ShareLink(AbstractShareLink):
    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="share_link"
    )


class Attachment(AbstractAttachment):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")


class EmailUser(AbstractBaseUser):
    """A user model signing in by email that also requires a username (`make_user`'s tests)."""

    email = models.EmailField(unique=True)
    username = models.CharField(max_length=5)
    birth_year = models.PositiveSmallIntegerField(null=True)

    objects = BaseUserManager["EmailUser"]()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    def __str__(self) -> str:
        return self.email


class ToolApproval(AbstractToolApproval):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="approvals")
