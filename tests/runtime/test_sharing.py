"""Share links (`AbstractShareLink`, `SharedConversationView`) through the test app's models.

A share is a snapshot: what the owner shared, nothing said after, behind an unguessable token,
gone when revoked; the page is read-only, unlisted, and open to signed-in people unless
`AI_CHAT_SHARE_REQUIRES_LOGIN = False`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import path

from django_ai_chat.models import SHARE_TOKEN_BYTES, AbstractMessage, new_share_token
from django_ai_chat.testing import make_user
from django_ai_chat.views import SharedConversationView
from tests.testapp.models import Conversation, Message, ShareLink

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

AGENT = AbstractMessage.Source.AGENT

urlpatterns = [
    path(
        "shared/<str:token>/",
        SharedConversationView.as_view(share_model=ShareLink, template_name="testapp/shared.html"),
        name="shared",
    ),
    path("accounts/login/", lambda request: None, name="login"),  # only redirected to
]


def exchange(conversation: Conversation, question: str, answer: str, **fields: Any) -> Message:
    asked = Message.objects.create(conversation=conversation, text=question)
    return Message.objects.create(
        conversation=conversation, text=answer, source=AGENT, response_to=asked, **fields
    )


@pytest.fixture
def alice() -> Any:
    return make_user("alice")


@pytest.fixture
def conversation(alice: Any) -> Conversation:
    conversation = Conversation.objects.create(user=alice, title="Paris")
    exchange(conversation, "Capital of France?", "**Paris**.")
    return conversation


def test_tokens_are_unguessable_and_url_safe() -> None:
    tokens = {new_share_token() for _ in range(200)}
    assert len(tokens) == 200
    assert SHARE_TOKEN_BYTES * 8 >= 128
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", token) for token in tokens)


def test_a_share_is_a_snapshot_of_the_complete_messages(conversation: Conversation) -> None:
    running = exchange(conversation, "And Spain?", "Mad", complete=False)

    link = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))

    texts = [(m.source, m.text) for m in link.shared_messages]
    # The answer still streaming is left out; its question is kept.
    assert texts == [
        ("user", "Capital of France?"),
        ("agent", "**Paris**."),
        ("user", "And Spain?"),
    ]
    assert link.title == "Paris"
    running.text, running.complete = "Madrid.", True
    running.save()
    exchange(conversation, "Later question", "Later answer")
    conversation.title = "Renamed"
    conversation.save()
    link.refresh_from_db()
    assert [m.text for m in link.shared_messages][-1] == "And Spain?"
    assert link.title == "Paris"


def test_sharing_again_refreshes_the_snapshot_and_keeps_the_token(
    conversation: Conversation,
) -> None:
    first = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))
    exchange(conversation, "Later question", "Later answer")

    again = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))

    assert (again.pk, again.token) == (first.pk, first.token)
    assert [m.text for m in again.shared_messages][-1] == "Later answer"
    assert ShareLink.objects.count() == 1


def test_tool_names_are_kept_not_their_arguments_or_results(conversation: Conversation) -> None:
    exchange(
        conversation,
        "My notes?",
        "You have one.",
        tool_calls=[{"id": "c1", "name": "read_notes", "arguments": {"secret": "s3cr3t"}}],
        tool_results=[{"id": "c1", "name": "read_notes", "content": "private note body"}],
    )

    link = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))

    assert link.shared_messages[-1].tool_names == ("read_notes",)
    assert "s3cr3t" not in str(link.messages)
    assert "private note body" not in str(link.messages)


def test_for_actor_sees_only_the_owners_links(alice: Any, conversation: Conversation) -> None:
    link = ShareLink.objects.share(conversation, conversation.messages.all())
    bob = make_user("bob")

    assert list(ShareLink.objects.for_actor(alice)) == [link]
    assert list(ShareLink.objects.for_actor(bob)) == []
    assert list(ShareLink.objects.for_actor(None)) == []


def test_revoked_unknown_and_malformed_tokens_are_not_found(conversation: Conversation) -> None:
    link = ShareLink.objects.share(conversation, conversation.messages.all())
    assert ShareLink.objects.by_token(link.token) == link

    assert ShareLink.objects.revoke(conversation) is True
    assert ShareLink.objects.revoke(conversation) is False
    for token in (link.token, new_share_token(), "x", "../../etc", None, "a" * 65):
        with pytest.raises(ShareLink.DoesNotExist):
            ShareLink.objects.by_token(token)


def test_deleting_the_conversation_deletes_its_link(conversation: Conversation) -> None:
    ShareLink.objects.share(conversation, conversation.messages.all())
    conversation.delete()
    assert not ShareLink.objects.exists()


# -- the page -------------------------------------------------------------------------------


def test_a_signed_in_viewer_reads_the_snapshot_unlisted_and_without_referrer(
    conversation: Conversation,
) -> None:
    link = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))
    viewer = Client()
    viewer.force_login(make_user("bob"))

    response = viewer.get(f"/shared/{link.token}/")

    assert response.status_code == 200
    assert "<strong>Paris</strong>" in response.content.decode()
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


def test_model_output_is_sanitised_on_the_shared_page(conversation: Conversation) -> None:
    exchange(
        conversation,
        "Hi",
        "Look <script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>",
    )
    link = ShareLink.objects.share(conversation, conversation.messages.order_by("id"))
    viewer = Client()
    viewer.force_login(make_user("bob"))

    html = viewer.get(f"/shared/{link.token}/").content.decode()

    assert "<script>" not in html
    assert 'href="javascript:' not in html
    assert "<img" not in html


def test_by_default_a_visitor_signs_in_first(conversation: Conversation) -> None:
    link = ShareLink.objects.share(conversation, conversation.messages.all())

    response = Client().get(f"/shared/{link.token}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/shared/")
    assert response["X-Robots-Tag"] == "noindex, nofollow"


@override_settings(AI_CHAT_SHARE_REQUIRES_LOGIN=False)
def test_public_links_open_for_anyone_and_revoked_ones_are_a_404(
    conversation: Conversation,
) -> None:
    link = ShareLink.objects.share(conversation, conversation.messages.all())
    visitor = Client()
    assert visitor.get(f"/shared/{link.token}/").status_code == 200

    ShareLink.objects.revoke(conversation)

    assert visitor.get(f"/shared/{link.token}/").status_code == 404
    assert visitor.get(f"/shared/{new_share_token()}/").status_code == 404
    assert visitor.get("/shared/not-a-token/").status_code == 404
    assert visitor.post(f"/shared/{link.token}/").status_code == 405
