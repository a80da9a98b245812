"""The abstract chat models through a concrete pair (`tests.testapp`): scopes, rules, answers."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

import django_ai_chat.models as models_module
from django_ai_chat.models import AbstractMessage, new_id
from django_ai_chat.testing import make_user
from tests.testapp.models import Conversation, Feedback, Message

pytestmark = pytest.mark.django_db

USER, AGENT = AbstractMessage.Source.USER, AbstractMessage.Source.AGENT


def chat(owner: Any, *texts: str) -> Conversation:
    """A conversation of `owner` with user messages `texts`."""
    conversation = Conversation.objects.create(user=owner)
    for text in texts:
        Message.objects.create(conversation=conversation, text=text)
    return conversation


def test_ids_are_time_ordered_uuid7() -> None:
    first, second = new_id(), new_id()

    assert first.version == 7
    assert first < second


def test_for_actor_scopes_both_querysets_to_the_owner() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    hers, _ = chat(alice, "mine"), chat(bob, "his")

    assert list(Conversation.objects.for_actor(alice)) == [hers]
    assert [m.text for m in Message.objects.for_actor(alice)] == ["mine"]
    for nobody in (None, AnonymousUser()):
        assert not Conversation.objects.for_actor(nobody).exists()
        assert not Message.objects.for_actor(nobody).exists()


def test_for_actor_without_an_owner_field_is_everyone_s(monkeypatch: pytest.MonkeyPatch) -> None:
    chat(make_user("alice"), "one")
    chat(make_user("bob"), "two")
    monkeypatch.setattr(Conversation, "owner_field", None)

    assert Conversation.objects.for_actor(None).count() == 2
    assert Message.objects.for_actor(None).count() == 2


def test_needing_title_and_needs_title_follow_the_same_rule() -> None:
    alice = make_user("alice")
    exchanged = chat(alice, "a", "b")  # the first exchange: named at once
    asked = chat(alice, "a")
    asked_long_ago = chat(alice, "a")
    Conversation.objects.filter(pk=asked_long_ago.pk).update(
        inserted_at=timezone.now() - timedelta(minutes=11)
    )
    titled = chat(alice, "a", "b", "c", "d")
    Conversation.objects.filter(pk=titled.pk).update(title="Set")
    locked = chat(alice, "a", "b", "c", "d")
    Conversation.objects.filter(pk=locked.pk).update(title_locked=True)

    needing = set(Conversation.objects.needing_title())
    assert needing == {exchanged}
    for conversation in Conversation.objects.all():
        assert conversation.needs_title == (conversation in needing), conversation.pk
    assert asked not in needing


def test_under_a_higher_threshold_short_conversations_wait_for_the_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models_module, "TITLE_AFTER_MESSAGES", 4)
    alice = make_user("alice")
    four = chat(alice, "a", "b", "c", "d")
    two_recent = chat(alice, "a", "b")
    two_old = chat(alice, "a", "b")
    Conversation.objects.filter(pk=two_old.pk).update(
        inserted_at=timezone.now() - timedelta(minutes=11)
    )

    needing = set(Conversation.objects.needing_title())
    assert needing == {four, two_old}
    for conversation in Conversation.objects.all():
        assert conversation.needs_title == (conversation in needing), conversation.pk
    assert two_recent not in needing


def test_create_answer_makes_one_answer_per_question() -> None:
    question = chat(make_user("alice"), "Hi").messages.get()
    assert question.needs_response
    assert list(Message.objects.needing_response()) == [question]

    answer = Message.objects.create_answer(question, complete=False)
    assert answer is not None
    assert (answer.source, answer.text, answer.response_to) == (AGENT, "", question)
    assert list(Message.objects.running()) == [answer]
    assert not question.needs_response
    assert not Message.objects.needing_response().exists()

    with transaction.atomic():
        # The refused duplicate leaves the caller's transaction usable.
        assert Message.objects.create_answer(question, text="again") is None
        assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # the ORM runs on another thread's connection
async def test_acreate_answer_is_the_async_twin() -> None:
    question = await Message.objects.acreate(
        conversation=await Conversation.objects.acreate(user=await _auser("alice")), text="Hi"
    )

    try:
        answer = await Message.objects.acreate_answer(question, error="Interrupted.")
        assert answer is not None and answer.error == "Interrupted."
        assert await Message.objects.acreate_answer(question) is None
    finally:
        await sync_to_async(connections.close_all)()


def test_give_keeps_one_rating_per_person_per_answer_and_changes_it_in_place() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    question = chat(alice, "Hello?").messages.get()
    answer = Message.objects.create_answer(question, text="Hi.")
    assert answer is not None

    first = Feedback.objects.give(answer, alice, rating="up")
    changed = Feedback.objects.give(answer, alice, rating="down", note="Too short.")
    Feedback.objects.give(answer, bob, rating="up")  # the caller checks who may see it

    assert first is not None and changed is not None and changed.pk == first.pk
    assert [(f.rating, f.note) for f in Feedback.objects.for_actor(alice)] == [
        ("down", "Too short.")
    ]
    assert Feedback.objects.filter(message=answer).count() == 2
    assert not Feedback.objects.for_actor(None).exists()
    assert Feedback.objects.give(answer, alice, rating="") is None
    assert not Feedback.objects.for_actor(alice).exists()


@pytest.mark.parametrize(
    ("rating", "who", "code"),
    [("up", "question", "invalid"), ("meh", "answer", "invalid_choice"), ("up", None, "anonymous")],
)
def test_give_refuses_questions_unknown_ratings_and_anonymous_people(
    rating: str, who: str | None, code: str
) -> None:
    alice = make_user("alice")
    question = chat(alice, "Hello?").messages.get()
    answer = Message.objects.create_answer(question, text="Hi.")

    with pytest.raises(ValidationError) as refused:
        Feedback.objects.give(
            question if who == "question" else answer,  # type: ignore[arg-type]
            alice if who else AnonymousUser(),
            rating=rating,
        )

    assert refused.value.code == code
    assert not Feedback.objects.exists()


def test_in_conversation_and_str() -> None:
    conversation = chat(make_user("alice"), "Hello there")

    message = Message.objects.in_conversation(conversation.pk).get()
    assert str(message) == "user: Hello there"
    assert str(conversation) == f"Conversation {conversation.pk}"
    conversation.title = "Plans"
    assert str(conversation) == "Plans"


def test_the_runtime_app_needs_no_migration() -> None:
    # Abstract models only: `makemigrations --check` stays clean for django_ai_chat.
    out = StringIO()
    call_command("makemigrations", "django_ai_chat", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


async def _auser(name: str) -> Any:
    return await sync_to_async(make_user)(name)
