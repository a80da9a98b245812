"""Which tool calls wait for the user's approval, and how an approval card labels arguments."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from django_ai_chat.tools import ModelTools, Tool, describe_arguments, needs_approval, tool
from tests.testapp.models import Note

notes = ModelTools(Note, fields=["title", "body", "due_at"], owner="owner")


@tool
def plain(text: str) -> str:
    """Echo."""
    return text


@tool(approval=True)
def send_mail(to: str, subject: str, cc: list[str] | None = None) -> str:
    """Send a mail.

    Args:
        to: Recipient address.
        subject: The subject line.
        cc: Copies.
    """
    return "sent"


class Duck:
    name = "duck"
    requires_approval = True


class PerCall(Tool):
    def __init__(self) -> None:
        super().__init__(
            name="per_call",
            description="Deletes some rows.",
            parameters={"type": "object", "properties": {"count": {"type": "integer"}}},
        )

    def needs_approval(self, arguments: dict[str, Any], actor: Any) -> bool:
        return int(arguments.get("count", 0)) > 1

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        return None


def test_model_tools_writes_ask_and_reads_do_not() -> None:
    assert not needs_approval(notes.read(), {}, None)
    assert not needs_approval(notes.get(), {"id": 1}, None)
    assert needs_approval(notes.create(), {"title": "x"}, None)
    assert needs_approval(notes.update(), {"id": 1}, None)
    assert needs_approval(notes.destroy(), {"id": 1}, None)
    assert not needs_approval(notes.destroy(approval=False), {"id": 1}, None)
    assert needs_approval(notes.read(approval=True), {}, None)


def test_function_tools_ask_when_declared() -> None:
    assert not needs_approval(plain, {"text": "a"}, None)
    assert needs_approval(send_mail, {"to": "a@b.c"}, None)
    assert send_mail.requires_approval and not plain.requires_approval


def test_duck_typed_and_per_call_tools() -> None:
    assert needs_approval(Duck(), {}, None)
    assert not needs_approval(object(), {}, None)
    assert needs_approval(PerCall(), {"count": 3}, None)
    assert not needs_approval(PerCall(), {"count": 1}, None)


def test_the_setting_wins_per_tool_name() -> None:
    create = notes.create()
    with override_settings(
        AI_CHAT_TOOL_APPROVAL={create.name: False, "plain": True, "duck": False}
    ):
        assert not needs_approval(create, {}, None)
        assert needs_approval(plain, {}, None)
        assert not needs_approval(Duck(), {}, None)
        assert needs_approval(notes.update(), {}, None)  # not named: its own choice


def test_arguments_are_labelled_for_people() -> None:
    assert send_mail.describe_arguments(
        {"subject": "Hi", "to": "a@b.c", "cc": ["x@y.z"], "extra": None}
    ) == [("To", "a@b.c"), ("Subject", "Hi"), ("Cc", '["x@y.z"]'), ("Extra", "—")]
    # Model tools use the fields' verbose names.
    assert notes.create().describe_arguments({"due_at": "2026-01-01T00:00:00Z", "title": "T"}) == [
        ("Title", "T"),
        ("Due at", "2026-01-01T00:00:00Z"),
    ]
    schema = {"type": "object", "properties": {"n": {"type": "integer", "title": "Number"}}}
    assert describe_arguments(schema, {"n": 2, "flag": True}) == [("Number", "2"), ("Flag", "yes")]
