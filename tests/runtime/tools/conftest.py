from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import connections

from tests.testapp.models import Note

WHEN = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


def _make_user(username: str, *perms: str) -> User:
    user = User.objects.create_user(username)
    codenames = [perm.split(".")[1] for perm in perms]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # fresh, without a stale permission cache


ALL_NOTE_PERMS = (
    "testapp.view_note",
    "testapp.add_note",
    "testapp.change_note",
    "testapp.delete_note",
)


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> Any:
    """Close the connection the tools opened in asgiref's sync thread.

    Otherwise it outlives the test and the test database cannot be dropped at the end.
    """
    yield
    await sync_to_async(connections.close_all, thread_sensitive=True)()


@pytest.fixture
def make_user(transactional_db: None) -> Callable[..., Awaitable[User]]:
    """`await make_user(username, *perms)`: a user holding these permissions."""
    return sync_to_async(_make_user)


@pytest.fixture
def alice(transactional_db: None) -> User:
    return _make_user("alice", *ALL_NOTE_PERMS)


@pytest.fixture
def bob(transactional_db: None) -> User:
    return _make_user("bob", *ALL_NOTE_PERMS)


@pytest.fixture
def notes(alice: User, bob: User) -> dict[str, Note]:
    """Four notes of Alice's and one of Bob's, keyed by title."""

    def note(owner: User, title: str, **fields: Any) -> Note:
        return Note.objects.create(owner=owner, title=title, **fields)

    made = [
        note(alice, "Groceries", body="milk, eggs", priority=1, pinned=True, due_at=WHEN),
        note(alice, "Garden plan", body="tomatoes", priority=3, status="published"),
        note(
            alice,
            "Tax return",
            body="receipts",
            priority=5,
            stars=4,
            due_at=WHEN + datetime.timedelta(days=30),
        ),
        note(alice, "Books", body="", priority=2, status="archived"),
        note(bob, "Bob's secret", body="the eggs are hidden", priority=9, pinned=True),
    ]
    return {n.title: n for n in made}
