from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse

if TYPE_CHECKING:
    from acme.users.models import User


def test_redirect_goes_to_the_users_page(user: User, client):
    client.force_login(user)
    response = client.get(reverse("users:redirect"))
    assert response.status_code == 302
    assert response.url == f"/users/{user.pk}/"


def test_home_page(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Acme" in response.content


def test_login_page(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
