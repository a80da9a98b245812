"""Per-user limits: checked before an answer is queued, race-safe, with when to retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from django_ai_chat import limits
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.limits import LimitExceeded, check_answer_limits
from django_ai_chat.testing import make_user
from tests.jobsapp.jobs import chat_jobs
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


def send(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """What the generated `send` view does: write the question and queue its answer, or 429."""
    try:
        with transaction.atomic():
            conversation = Conversation.objects.for_actor(request.user).get(pk=conversation_id)
            message = Message.objects.create(conversation=conversation, text=request.POST["text"])
            chat_jobs.defer_response(message, request.user)
    except LimitExceeded as refused:
        response = HttpResponse(str(refused), status=429)
        response["Retry-After"] = str(refused.retry_after())
        return response
    return HttpResponse(str(message.pk), status=201)


urlpatterns = [path("send/<uuid:conversation_id>/", send)]


def _respond_jobs() -> int:
    return ProcrastinateJob.objects.filter(task_name="jobsapp.respond").count()


@pytest.fixture(autouse=True)
def _no_jobs() -> Iterator[None]:
    # procrastinate's tables are not Django-managed: the test database flush leaves them.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE task_name LIKE 'jobsapp.%%'")
    yield


@pytest.fixture
def alice() -> Any:
    return make_user("alice")


def ask(actor: Any, conversation: Conversation | None = None) -> Message:
    """One question through `defer_response`, as the actions write it."""
    with transaction.atomic():
        conversation = conversation or Conversation.objects.create(user=actor)
        message = Message.objects.create(conversation=conversation, text="Hi")
        chat_jobs.defer_response(message, actor)
    return message


@override_settings(ROOT_URLCONF=__name__, AI_CHAT_MESSAGE_LIMIT=(5, 3600))
def test_twenty_simultaneous_posts_over_a_limit_of_five_queue_exactly_five(alice: Any) -> None:
    conversation = Conversation.objects.create(user=alice)
    url = f"/send/{conversation.pk}/"
    start = threading.Barrier(20)
    statuses: list[int] = []
    bodies: list[str] = []
    retry_after: list[str] = []

    def post(number: int) -> None:
        client = Client()
        client.force_login(alice)
        start.wait()  # all twenty at once, each on its own connection
        try:
            response = client.post(url, {"text": f"Question {number}"})
            statuses.append(response.status_code)
            bodies.append(response.content.decode())
            retry_after.append(response.get("Retry-After", ""))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * 5 + [429] * 15
    assert _respond_jobs() == 5
    assert Message.objects.filter(conversation=conversation).count() == 5
    refusals = [b for s, b in zip(statuses, bodies, strict=True) if s == 429]
    assert set(refusals) == {
        "You have sent 5 messages in 1 hour, the most allowed. You can send this one in 60 minutes."
    }
    seconds = {int(r) for s, r in zip(statuses, retry_after, strict=True) if s == 429}
    assert all(3500 < s <= 3600 for s in seconds)


def test_the_message_window_slides(alice: Any) -> None:
    with override_settings(AI_CHAT_MESSAGE_LIMIT=(2, 60)):
        first, _ = ask(alice), ask(alice)
        with pytest.raises(LimitExceeded) as refused:
            ask(alice)
        assert refused.value.limit == "messages"
        assert refused.value.retry_at == first.inserted_at + timedelta(seconds=60)
        Message.objects.filter(pk=first.pk).update(
            inserted_at=timezone.now() - timedelta(seconds=61)
        )
        ask(alice)  # the first left the window
    assert _respond_jobs() == 3


def test_tokens_of_the_last_day_and_when_enough_of_them_expire(alice: Any) -> None:
    now = timezone.now()
    for hours_ago, tokens in ((30, 900), (20, 600), (10, 500)):
        question = ask(alice)
        answer = Message.objects.create_answer(question, input_tokens=tokens - 100)
        assert answer is not None
        Message.objects.filter(pk=answer.pk).update(
            output_tokens=100, inserted_at=now - timedelta(hours=hours_ago)
        )
    with override_settings(AI_CHAT_DAILY_TOKEN_LIMIT=1000):
        with pytest.raises(LimitExceeded, match="1,000 tokens in 24 hours") as refused:
            ask(alice)  # 600 + 500 within the day; 900 of 30 hours ago no longer counts
        retry_at = refused.value.retry_at
        assert retry_at is not None
        assert abs(retry_at - (now + timedelta(hours=4))) < timedelta(seconds=5)
    with override_settings(AI_CHAT_DAILY_TOKEN_LIMIT=1101):
        ask(alice)


def test_answers_at_once_count_waiting_and_running_ones(alice: Any) -> None:
    with override_settings(AI_CHAT_ANSWER_LIMIT=2):
        first = ask(alice)
        ask(alice)
        with pytest.raises(LimitExceeded, match="when an answer has finished") as refused:
            ask(alice)
        assert refused.value.retry_at is None and refused.value.retry_after() == 10
        Message.objects.create_answer(first, complete=False)  # running: still counts
        with pytest.raises(LimitExceeded):
            ask(alice)
        Message.objects.filter(response_to=first).update(complete=True)
        ask(alice)


def test_staff_and_no_user_mode_are_exempt_and_staff_only_by_the_setting(alice: Any) -> None:
    staff = make_user("root", is_staff=True)
    with override_settings(AI_CHAT_ANSWER_LIMIT=0):
        ask(staff)
        assert limits.exempt(None)
        with override_settings(AI_CHAT_LIMITS_EXEMPT_STAFF=False), pytest.raises(LimitExceeded):
            ask(staff)
        with pytest.raises(LimitExceeded):
            ask(alice)
    assert _respond_jobs() == 1


def test_the_check_refuses_to_run_outside_a_transaction(alice: Any) -> None:
    with (
        override_settings(AI_CHAT_ANSWER_LIMIT=3),
        pytest.raises(ConfigurationError, match=r"transaction\.atomic"),
    ):
        check_answer_limits(alice, Message)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MESSAGE_LIMIT", 5), ("MESSAGE_LIMIT", (5, 0)), ("ANSWER_LIMIT", -1), ("STREAM_LIMIT", "3")],
)
def test_a_malformed_limit_names_the_setting(alice: Any, name: str, value: Any) -> None:
    with (
        override_settings(**{f"AI_CHAT_{name}": value}),
        pytest.raises(ConfigurationError, match=f"AI_CHAT_{name}"),
    ):
        if name == "STREAM_LIMIT":
            limits.reserve_stream(alice)
        else:
            ask(alice)


def test_open_streams_are_counted_until_released(alice: Any) -> None:
    with override_settings(AI_CHAT_STREAM_LIMIT=2):
        first = limits.reserve_stream(alice)
        with (
            limits.open_stream(alice),
            pytest.raises(LimitExceeded, match="2 chats open already"),
        ):
            limits.reserve_stream(alice)
        third = limits.reserve_stream(alice)  # the block's was given back
        first()
        first()  # released once only
        with limits.open_stream(alice), pytest.raises(LimitExceeded):
            limits.reserve_stream(alice)
        third()
