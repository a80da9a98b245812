from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acme.users.models import User


def test_user_get_absolute_url(user: User):
    assert user.get_absolute_url() == f"/users/{user.pk}/"


def test_user_logs_in_with_email(user: User, client):
    assert client.login(username=user.email, password="a-long-password-42")
