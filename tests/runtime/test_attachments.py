"""Attachments: what is accepted (by content), where it is kept, who may fetch it, what the
model receives (the file itself, or its text), and that deleting removes the stored file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client, override_settings
from django.urls import path
from django.utils.datastructures import MultiValueDict
from pydantic_ai.messages import BinaryContent, ModelRequest, UserPromptPart

from django_ai_chat.answers import Responder
from django_ai_chat.attachments import accepts_file, attachment_storage, sniff
from django_ai_chat.forms import MessageForm, clean_attachments
from django_ai_chat.testing import (
    FakeOpenAIServer,
    ScriptedLLM,
    make_user,
    sample_pdf,
    sample_png,
)
from django_ai_chat.views import AttachmentView
from tests.testapp.models import Attachment, Conversation, Message

pytestmark = pytest.mark.urls(__name__)

urlpatterns = [
    path(
        "files/<str:attachment_id>/",
        AttachmentView.as_view(attachment_model=Attachment),
        name="attachment",
    ),
]

PNG = sample_png()
PDF = sample_pdf("Quarterly report: revenue grew twelve percent.")


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> Any:
    return SimpleUploadedFile(name, data, content_type=content_type)


class ChatResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    attachment_model = Attachment
    model = "test:scripted"


# -- what is accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("photo.png", PNG, "image/png"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        ("anim.gif", b"GIF89a\x01\x00", "image/gif"),
        ("pic.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        ("report.pdf", PDF, "application/pdf"),
        ("misnamed.txt", PNG, "image/png"),  # the content decides, not the name
        ("notes.md", b"# Notes\n", "text/markdown"),
        ("data.csv", b"a,b\n1,2\n", "text/csv"),
        ("page.txt", b"<html><script>alert(1)</script>", "text/plain"),  # stored as text
        ("page.html", b"<html><script>alert(1)</script>", None),
        ("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        ("fake.pdf", b"MZ\x90\x00 not a pdf", None),
        ("binary.txt", b"ab\x00cd", None),
    ],
)
def test_the_type_is_read_from_the_content(name: str, head: bytes, expected: str | None) -> None:
    assert sniff(head, name) == expected


def test_accepted_files_come_back_with_their_sniffed_type_and_text() -> None:
    image, pdf, notes = clean_attachments(
        [
            upload("../../etc/photo.png", PNG, "text/html"),  # the browser's claim is ignored
            upload("report.pdf", PDF, "application/pdf"),
            upload("notes.md", "# Café\nbread, eggs".encode(), "text/markdown"),
        ]
    )
    assert (image.name, image.media_type, image.size, image.text) == (
        "photo.png",
        "image/png",
        len(PNG),
        "",
    )
    assert (pdf.media_type, pdf.pages) == ("application/pdf", 1)
    assert "revenue grew twelve percent" in pdf.text
    assert (notes.media_type, notes.text) == ("text/markdown", "# Café\nbread, eggs")


@override_settings(AI_CHAT_MAX_ATTACHMENT_SIZE=1000)
def test_too_big_wrong_type_too_many_and_unreadable_are_refused_with_what_to_do() -> None:
    cases: list[tuple[list[Any], str, str]] = [
        (
            [upload("photo.png", PNG)],
            "too_big",
            "'photo.png' is too big (6.4 KB; the limit is 1.0 KB)",
        ),
        ([upload("page.html", b"<html>")], "wrong_type", "'page.html' cannot be attached"),
        ([upload("broken.pdf", b"%PDF-1.4\nthis is no pdf")], "unreadable", "could not be read"),
        ([upload("latin.txt", "café".encode("latin-1"))], "unreadable", "not UTF-8"),
        ([upload(f"{i}.txt", b"x") for i in range(6)], "too_many", "Too many files (6)"),
    ]
    for files, code, message in cases:
        with pytest.raises(ValidationError) as raised:
            clean_attachments(files)
        assert raised.value.code == code
        assert message in raised.value.messages[0]


@override_settings(AI_CHAT_ATTACHMENT_TYPES=("application/pdf",))
def test_the_accepted_types_are_a_setting() -> None:
    with pytest.raises(ValidationError, match="PDF only"):
        clean_attachments([upload("photo.png", PNG)])


def test_a_message_with_files_may_have_no_text_and_one_without_must() -> None:
    form = MessageForm({"text": "  "}, MultiValueDict({"attachments": [upload("photo.png", PNG)]}))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["text"] == ""
    assert [u.name for u in form.cleaned_data["attachments"]] == ["photo.png"]

    form = MessageForm({"text": ""}, {})
    assert not form.is_valid()
    assert form.errors["text"] == ["Message cannot be empty"]

    form = MessageForm({"text": "Look"}, MultiValueDict({"attachments": [upload("x.exe", b"MZ")]}))
    assert not form.is_valid()
    assert "'x.exe' cannot be attached" in form.errors["attachments"][0]


# -- storage, ownership, serving --------------------------------------------------------------


@pytest.fixture
def alice(db: None) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> Any:
    return make_user("bob")


@pytest.fixture
def attach(alice: Any) -> Callable[..., Attachment]:
    def make(name: str = "photo.png", data: bytes = PNG, owner: Any = alice) -> Attachment:
        conversation = Conversation.objects.create(user=owner)
        message = Message.objects.create(conversation=conversation, text="See attached")
        (attachment,) = Attachment.objects.attach(message, clean_attachments([upload(name, data)]))
        return attachment

    return make


def test_files_are_kept_in_the_storage_under_names_of_ours(
    attach: Callable[..., Attachment],
) -> None:
    attachment = attach("../My photo.png")
    name = attachment.file.name
    assert name is not None
    assert name.startswith("ai_chat/attachments/") and name.endswith(f"{attachment.pk}.png")
    assert attachment.name == "My photo.png"
    with attachment_storage().open(name) as stored:
        assert stored.read() == PNG


@pytest.fixture
def signed_in(alice: Any) -> Iterator[Client]:
    client = Client()
    client.force_login(alice)
    yield client


def test_the_owner_gets_an_image_inline_and_other_files_as_downloads(
    attach: Callable[..., Attachment], signed_in: Client
) -> None:
    image = attach("photo.png", PNG)
    response = signed_in.get(f"/files/{image.pk}/")
    assert response.status_code == 200
    assert response.content == PNG
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="photo.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Cache-Control"].startswith("private")

    html_as_text = attach("page.txt", b"<html><script>alert(1)</script></html>")
    response = signed_in.get(f"/files/{html_as_text.pk}/")
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="page.txt"'

    pdf = attach("report.pdf", PDF)
    assert signed_in.get(f"/files/{pdf.pk}/")["Content-Disposition"].startswith("attachment")
    downloaded = signed_in.get(f"/files/{image.pk}/?download=1")
    assert downloaded["Content-Disposition"].startswith("attachment")


def test_another_users_file_an_anonymous_visitor_and_a_bad_id_get_404(
    attach: Callable[..., Attachment], bob: Any
) -> None:
    attachment = attach()
    other = Client()
    other.force_login(bob)
    assert other.get(f"/files/{attachment.pk}/").status_code == 404
    assert Client().get(f"/files/{attachment.pk}/").status_code == 404
    assert other.get("/files/not-a-uuid/").status_code == 404
    assert other.get(f"/files/{uuid.uuid4()}/").status_code == 404
    assert not Attachment.objects.for_actor(AnonymousUser()).exists()
    assert not Attachment.objects.for_actor(bob).exists()


def test_deleting_a_conversation_deletes_its_files_from_the_storage(
    attach: Callable[..., Attachment],
    django_capture_on_commit_callbacks: Any,
) -> None:
    attachment = attach()
    name = attachment.file.name
    storage = attachment_storage()
    assert name is not None and storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        attachment.message.conversation.delete()
    assert not Attachment.objects.filter(pk=attachment.pk).exists()
    assert not storage.exists(name)


def test_copies_share_the_file_and_it_leaves_the_storage_with_the_last(
    attach: Callable[..., Attachment],
    django_capture_on_commit_callbacks: Any,
) -> None:
    attachment = attach()
    edited = Message.objects.add_sibling(attachment.message, text="See attached, edited")
    (copy,) = Attachment.objects.filter(message=attachment.message).copy_to(edited)
    name = attachment.file.name
    storage = attachment_storage()
    assert copy.file.name == name and copy.name == attachment.name and copy.pk != attachment.pk

    with django_capture_on_commit_callbacks(execute=True):
        attachment.message.delete()
    assert name is not None and storage.exists(name)  # the edit still shows it
    with django_capture_on_commit_callbacks(execute=True):
        edited.delete()
    assert not storage.exists(name)


# -- what the model receives ------------------------------------------------------------------


def test_pdfs_go_as_files_only_to_providers_that_read_them(settings: Any) -> None:
    assert accepts_file("anthropic:claude-sonnet-4-6", "application/pdf")
    assert accepts_file("openai:gpt-4o", "application/pdf")
    assert not accepts_file("ollama:llama3.2", "application/pdf")
    assert accepts_file("ollama:llava", "image/png")
    assert not accepts_file("anthropic:claude-sonnet-4-6", "text/csv")
    settings.AI_CHAT_OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # a compatible server
    assert not accepts_file("openai:gpt-4o", "application/pdf")


@pytest.fixture
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    # The ORM runs in asgiref's sync thread; its connection must not outlive the test.
    yield
    await sync_to_async(connections.close_all)()


def _user_parts(request: list[Any]) -> list[Any]:
    last = request[-1]
    assert isinstance(last, ModelRequest)
    (part,) = [p for p in last.parts if isinstance(p, UserPromptPart)]
    assert isinstance(part.content, list)
    return list(part.content)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_sync_thread_connections")
async def test_the_model_gets_the_image_as_a_file_and_the_text_file_as_text(
    scripted_llm: ScriptedLLM,
) -> None:
    alice = await sync_to_async(make_user)("alice")
    scripted_llm.add_turns(["Nice picture."])
    conversation = await Conversation.objects.acreate(user=alice)
    question = await Message.objects.acreate(conversation=conversation, text="What is this?")
    uploads = clean_attachments([upload("photo.png", PNG), upload("notes.md", b"# Shopping\neggs")])
    await sync_to_async(Attachment.objects.attach)(question, uploads)

    await ChatResponder().respond(question.pk, actor=alice)

    text, image_header, image, notes = _user_parts(scripted_llm.requests[-1])
    assert text == "What is this?"
    assert image_header.startswith("[Attached file: photo.png · image/png")
    assert isinstance(image, BinaryContent) and image.data == PNG
    assert image.media_type == "image/png"
    assert notes.startswith("[Attached file: notes.md · text/markdown")
    assert "# Shopping\neggs" in notes
    sent = {a.name: a.sent_as async for a in Attachment.objects.filter(message=question)}
    assert sent == {"photo.png": "file", "notes.md": "text"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_close_sync_thread_connections")
async def test_an_openai_compatible_provider_gets_an_image_part_and_the_pdfs_text(
    settings: Any,
) -> None:
    alice = await sync_to_async(make_user)("alice")
    conversation = await Conversation.objects.acreate(user=alice)
    question = await Message.objects.acreate(conversation=conversation, text="Summarise")
    uploads = clean_attachments([upload("photo.png", PNG), upload("report.pdf", PDF)])
    await sync_to_async(Attachment.objects.attach)(question, uploads)

    with FakeOpenAIServer(tokens=3) as server:
        settings.AI_CHAT_OPENAI_BASE_URL = server.base_url

        class OpenAIResponder(ChatResponder):
            model = "openai:gpt-4o"

        settings.AI_CHAT_MODEL = None
        await OpenAIResponder().respond(question.pk, actor=alice)
        (request,) = server.requests

    content = request["messages"][-1]["content"]
    kinds = [part["type"] for part in content]
    assert kinds == ["text", "text", "image_url", "text"]
    assert content[2]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[3]["text"].startswith("[Attached file: report.pdf · application/pdf")
    assert "revenue grew twelve percent" in content[3]["text"]
    answer = await Message.objects.aget(response_to=question)
    assert answer.text.startswith(
        f"I received photo.png as an image part (image/png, {len(PNG)} bytes); "
        "report.pdf as text: “Quarterly report: revenue grew twelve percent.”."
    )
