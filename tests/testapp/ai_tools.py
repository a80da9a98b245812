"""Tools of the test app, found by `django_ai_chat`'s autodiscovery."""

from __future__ import annotations

from typing import Any

from django_ai_chat.tools import ModelTools, registry, tool
from tests.testapp.models import Note

notes = ModelTools(
    Note,
    fields=["title", "body", "status", "priority", "pinned", "due_at", "created_at"],
    owner="owner",
)


@tool
def note_titles(actor: Any, status: Note.Status | None = None) -> list[str]:
    """Titles of the user's notes, optionally only those with one status.

    Args:
        status: Only notes with this status.
    """
    queryset = notes.queryset(actor)
    if status is not None:
        queryset = queryset.filter(status=status)
    return list(queryset.values_list("title", flat=True))


registry.register(
    notes.read(),
    notes.get(),
    notes.create(),
    notes.update(),
    notes.destroy(),
    note_titles,
)
