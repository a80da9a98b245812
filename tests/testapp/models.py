"""Models the runtime's tests expose as tools."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


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
