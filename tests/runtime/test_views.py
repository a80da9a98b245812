"""`ConversationStreamView` through a real request: who may follow, what a (re)connect sends."""

from __future__ import annotations

import asyncio
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.test import AsyncClient, override_settings
from django.urls import path

from django_ai_chat import streaming
from django_ai_chat.branches import announce_path_change
from django_ai_chat.testing import make_user
from django_ai_chat.views import ConversationStreamView
from tests.testapp.models import Conversation, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

WAIT = 20.0  # upper bound for the stream to deliver; never a speed assertion
_MESSAGE_ID = re.compile(r'id="message-([0-9a-f-]{36})"')


class StreamView(ConversationStreamView):
    message_model = Message
    message_template_name = "testapp/_message.html"
    history_limit = 5


urlpatterns = [
    path("stream/", StreamView.as_view(), name="stream_conversations"),
    # `str`, not `uuid`: a malformed id must reach the view (a project's URL may take any text).
    path("<str:conversation_id>/stream/", StreamView.as_view(), name="stream"),
]


@pytest.fixture
def alice() -> Any:
    return make_user("alice")


@pytest.fixture
def client(alice: Any) -> AsyncClient:
    client = AsyncClient()
    client.force_login(alice)
    return client


def write(conversation: Conversation, count: int, *, complete: bool = True) -> list[str]:
    return [
        str(Message.objects.create(conversation=conversation, text=f"#{i}", complete=complete).pk)
        for i in range(count)
    ]


async def events(response: Any) -> AsyncIterator[str]:
    """The response's SSE chunks as text (gunzipped when the response is compressed)."""
    chunks = aiter(response.streaming_content)
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    gzipped = response.get("Content-Encoding") == "gzip"
    try:
        async for chunk in chunks:
            data = chunk if isinstance(chunk, bytes) else chunk.encode()
            yield (decompressor.decompress(data) if gzipped else data).decode()
    finally:
        await chunks.aclose()


async def caught_up(response: Any, conversation_id: object) -> tuple[list[str], AsyncIterator[str]]:
    """Message ids the stream sends before a marker published after it started listening."""
    stream = events(response)
    marker = str(uuid.uuid4())
    sent: list[str] = []
    async with asyncio.timeout(WAIT):
        assert (await anext(stream)).startswith("retry:")  # it listens from here on
        await streaming.amessage_changed(conversation_id, marker)
        async for chunk in stream:
            if marker in chunk:  # `removed`: the row does not exist
                return sent, stream
            if chunk.startswith("event: message"):
                sent += _MESSAGE_ID.findall(chunk)[:1]
    raise AssertionError("the stream ended before the marker")


async def test_a_connect_sends_the_newest_messages_then_live_changes(
    client: AsyncClient, alice: Any
) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    rows = await sync_to_async(write)(conversation, 8)

    response = await client.get(f"/{conversation.pk}/stream/", headers={"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Content-Encoding"] == "gzip"
    sent, stream = await caught_up(response, conversation.pk)
    assert sent == rows[-StreamView.history_limit :]
    new = await Message.objects.acreate(conversation=conversation, text="live")
    await streaming.amessage_changed(conversation.pk, new.pk)
    async with asyncio.timeout(WAIT):
        chunk = await anext(stream)
    assert f'id="message-{new.pk}"' in chunk
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_reconnect_sends_only_what_the_cursor_lacks(
    client: AsyncClient, alice: Any
) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    rows = await sync_to_async(write)(conversation, 4)

    response = await client.get(f"/{conversation.pk}/stream/", {"after": rows[1]})

    sent, stream = await caught_up(response, conversation.pk)
    await stream.aclose()  # type: ignore[attr-defined]
    assert sent == rows[2:]


async def test_an_incomplete_answer_is_sent_however_old(client: AsyncClient, alice: Any) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    running = (await sync_to_async(write)(conversation, 1, complete=False))[0]
    newer = await sync_to_async(write)(conversation, StreamView.history_limit)

    response = await client.get(f"/{conversation.pk}/stream/", {"after": newer[-1]})

    sent, stream = await caught_up(response, conversation.pk)
    await stream.aclose()  # type: ignore[attr-defined]
    assert sent == [running]


def _branched(conversation: Conversation) -> tuple[list[Message], list[Message]]:
    """Q1 → A1, then Q1 edited → A1': the old branch and the active one."""
    q1 = Message.objects.add_question(conversation, text="Q1")
    a1 = Message.objects.create_answer(q1, text="A1")
    edited = Message.objects.add_sibling(q1, text="Q1 edited")
    a1_again = Message.objects.create_answer(edited, text="A1 again")
    assert a1 is not None and a1_again is not None
    return [q1, a1], [edited, a1_again]


def _switch_back(conversation: Conversation, message: Message) -> None:
    with transaction.atomic(), announce_path_change(Message, conversation.pk):
        Message.objects.activate(message)


async def test_the_stream_follows_the_active_branch_in_every_tab(
    client: AsyncClient, alice: Any
) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    old, new = await sync_to_async(_branched)(conversation)
    tabs = [await client.get(f"/{conversation.pk}/stream/") for _ in range(2)]
    streams = []
    for tab in tabs:
        sent, stream = await caught_up(tab, conversation.pk)
        assert sent == [str(m.pk) for m in new]  # the old branch is not on the page
        streams.append(stream)

    await sync_to_async(_switch_back)(conversation, old[0])

    for stream in streams:
        shown: dict[str, str] = {}
        removed: set[str] = set()
        async with asyncio.timeout(WAIT):
            async for chunk in stream:
                if chunk.startswith("event: removed"):
                    removed.update(re.findall(r'"id": "([0-9a-f-]{36})"', chunk))
                elif chunk.startswith("event: message"):
                    shown[_MESSAGE_ID.findall(chunk)[0]] = chunk
                if len(shown) == 2 and {str(m.pk) for m in new} <= removed:
                    break
        # (The second tab's catch-up marker reaches the first tab as a removal too.)
        assert removed & {str(m.pk) for m in old + new} == {str(m.pk) for m in new}
        assert set(shown) == {str(m.pk) for m in old}
        assert 'data-branch="1/2"' in shown[str(old[0].pk)]  # the switcher's place
        await stream.aclose()  # type: ignore[attr-defined]


async def test_the_stream_holds_no_database_connection_while_it_waits(
    client: AsyncClient, alice: Any
) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    await sync_to_async(write)(conversation, 2)

    response = await client.get(f"/{conversation.pk}/stream/")
    _, stream = await caught_up(response, conversation.pk)

    # The reads ran in this thread-sensitive executor, whose connection they closed.
    assert await sync_to_async(lambda: connection.connection is None)()
    await stream.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("whose", ["another users", "unknown", "malformed"])
async def test_a_conversation_the_user_may_not_see_is_a_404(
    client: AsyncClient, whose: str
) -> None:
    if whose == "another users":
        bob = await sync_to_async(make_user)("bob")
        conversation_id: object = (await Conversation.objects.acreate(user=bob)).pk
    else:
        conversation_id = uuid.uuid4() if whose == "unknown" else "not-a-uuid"

    response = await client.get(f"/{conversation_id}/stream/")

    assert response.status_code == 404


async def test_a_visitor_who_is_not_signed_in_is_refused(alice: Any) -> None:
    conversation = await Conversation.objects.acreate(user=alice)

    for url in ("/stream/", f"/{conversation.pk}/stream/"):
        response = await AsyncClient().get(url)
        assert response.status_code == 403, url


async def test_streams_over_the_limit_are_refused_until_one_closes(
    client: AsyncClient, alice: Any
) -> None:
    conversation = await Conversation.objects.acreate(user=alice)
    url = f"/{conversation.pk}/stream/"
    with override_settings(AI_CHAT_STREAM_LIMIT=1):
        first = await client.get(url)
        _, stream = await caught_up(first, conversation.pk)

        refused = await client.get(url)
        assert refused.status_code == 429
        assert "1 chat open already" in refused.content.decode()
        assert int(refused["Retry-After"]) > 0

        await stream.aclose()  # type: ignore[attr-defined]
        first.close()
        again = await client.get(url)
        assert again.status_code == 200
        again.close()


async def test_only_get_is_allowed(client: AsyncClient) -> None:
    response = await client.post("/stream/")

    assert response.status_code == 405
    assert response["Allow"] == "GET"


@pytest.fixture
def atomic_requests() -> Iterator[None]:
    """`ATOMIC_REQUESTS = True` on every database (cookiecutter-django's default)."""
    saved = {alias: connections.settings[alias]["ATOMIC_REQUESTS"] for alias in connections}
    for alias in connections:
        connections.settings[alias]["ATOMIC_REQUESTS"] = True
    try:
        yield
    finally:
        for alias, value in saved.items():
            connections.settings[alias]["ATOMIC_REQUESTS"] = value


@pytest.mark.usefixtures("atomic_requests")
async def test_atomic_requests_leave_the_stream_alone(client: AsyncClient, alice: Any) -> None:
    # Django refuses async views under ATOMIC_REQUESTS unless they are marked non-atomic.
    conversation = await Conversation.objects.acreate(user=alice)

    response = await client.get(f"/{conversation.pk}/stream/")

    assert response.status_code == 200
    _, stream = await caught_up(response, conversation.pk)
    await stream.aclose()  # type: ignore[attr-defined]


def test_the_view_needs_its_message_model() -> None:
    view = ConversationStreamView(message_template_name="x.html")

    with pytest.raises(ImproperlyConfigured, match="message_model"):
        view.conversation_model()
