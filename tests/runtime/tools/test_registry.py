from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.tools import ModelTools, Tool, ToolRegistry, registry, tool
from tests.testapp.models import Note

MakeUser = Callable[..., Awaitable[User]]


class Echo(Tool):
    def __init__(self, name: str = "echo") -> None:
        super().__init__(name=name, description="Echo.", parameters={"type": "object"})

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        return arguments


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@tool(permission="testapp.delete_note")
def purge() -> str:
    """Needs the delete permission."""
    return "purged"


def fresh_registry() -> ToolRegistry:
    notes = ModelTools(Note, fields=["title"], owner="owner")
    tools = ToolRegistry()
    tools.register(notes.read(), notes.create(), notes.destroy(), shout, purge)
    return tools


def names(tools: list[Tool]) -> list[str]:
    return [t.name for t in tools]


def test_autodiscovery_registers_the_test_apps_ai_tools() -> None:
    assert {
        "read_notes",
        "get_note",
        "create_note",
        "update_note",
        "destroy_note",
        "note_titles",
    } <= {t.name for t in registry}
    assert registry.get("read_notes").description.startswith("List the notes")


def test_duplicate_names_are_refused_but_re_registering_is_harmless() -> None:
    tools = ToolRegistry()
    echo = Echo()
    tools.register(echo)
    tools.register(echo)
    assert len(tools) == 1

    with pytest.raises(ConfigurationError, match=r"Two tools are named 'echo'.*pass name=\.\.\."):
        tools.register(Echo())


def test_register_refuses_plain_functions() -> None:
    def plain() -> None: ...

    with pytest.raises(TypeError, match="decorate functions with @tool"):
        ToolRegistry().register(plain)  # type: ignore[arg-type]


def test_get_and_unregister() -> None:
    tools = fresh_registry()
    assert tools.get("shout") is shout
    tools.unregister("shout", "never-registered")
    assert "shout" not in tools
    with pytest.raises(
        LookupError, match=re.escape("No tool named 'shout'. Registered tools: 'read_notes'")
    ):
        tools.get("shout")


@pytest.mark.django_db(transaction=True)
async def test_for_actor_keeps_the_tools_the_actor_may_use(make_user: MakeUser) -> None:
    tools = fresh_registry()
    reader = await make_user("reader", "testapp.view_note")
    editor = await make_user("editor", "testapp.change_note", "testapp.delete_note")
    root = await User.objects.acreate_superuser("root")

    assert names(await tools.afor_actor(reader)) == ["read_notes", "shout"]
    # change implies view, as in the admin.
    assert names(await tools.afor_actor(editor)) == ["read_notes", "destroy_note", "shout", "purge"]
    assert names(await tools.afor_actor(root)) == [
        "read_notes",
        "create_note",
        "destroy_note",
        "shout",
        "purge",
    ]
    assert names(await tools.afor_actor(AnonymousUser())) == ["shout"]
    # No-user mode: nobody to check permissions of.
    assert names(await tools.afor_actor(None)) == names(list(tools))
    # Inactive users have no permissions.
    root.is_active = False
    assert names(await tools.afor_actor(root)) == ["shout"]


@pytest.mark.django_db(transaction=True)
async def test_for_actor_restricted_to_names(make_user: MakeUser) -> None:
    tools = fresh_registry()
    reader = await make_user("reader", "testapp.view_note")
    echo = Echo()

    assert names(await tools.afor_actor(reader, ["shout", "read_notes"])) == ["shout", "read_notes"]
    # Names the actor may not use are left out, Tool objects are taken as they are.
    assert names(await tools.afor_actor(reader, ["create_note", echo])) == ["echo"]
    assert await tools.afor_actor(reader, False) == []
    assert await tools.afor_actor(reader, []) == []


def test_for_actor_unknown_names_are_an_error() -> None:
    with pytest.raises(
        ConfigurationError, match=re.escape("Unknown tool names: 'nope', 'nada'. Registered")
    ):
        fresh_registry().for_actor(None, ["shout", "nope", "nada"])
    with pytest.raises(TypeError, match="pass a list of tool names"):
        fresh_registry().for_actor(None, "shout")  # type: ignore[arg-type]


def test_objects_without_has_perms_are_denied() -> None:
    tools = fresh_registry()
    assert names(tools.for_actor(object())) == ["shout"]
