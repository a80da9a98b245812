from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.tools import ModelTools
from tests.testapp.models import Note


def test_create_schema_maps_each_field_type() -> None:
    schema = ModelTools(Note, fields="__all__", scope="for_actor").create().parameters

    properties = schema["properties"]
    assert properties["title"] == {
        "type": "string",
        "maxLength": 120,
        "description": "A short title.",
    }
    assert properties["body"] == {"type": "string"}
    assert properties["status"] == {
        "type": "string",
        "maxLength": 20,
        "enum": ["draft", "published", "archived"],
    }
    assert properties["priority"] == {"type": "integer"}
    assert properties["stars"] == {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}
    assert properties["pinned"] == {"type": "boolean"}
    assert properties["due_at"] == {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]
    }
    assert properties["public_id"] == {"type": "string", "format": "uuid"}
    # A foreign key takes the type of the related primary key.
    assert properties["owner"] == {"type": "integer", "description": "Primary key of a user."}
    # Not writable: the primary key and auto_now_add fields.
    assert "id" not in properties
    assert "created_at" not in properties
    # Required: neither nullable, nor blank, nor with a default.
    assert schema["required"] == ["owner", "title"]
    assert schema["additionalProperties"] is False


def test_owner_is_never_writable_and_update_requires_only_the_key() -> None:
    tools = ModelTools(Note, fields=["title", "body", "owner"], owner="owner")

    assert set(tools.create().parameters["properties"]) == {"title", "body"}
    update = tools.update().parameters
    assert set(update["properties"]) == {"id", "title", "body"}
    assert update["required"] == ["id"]
    assert tools.get().parameters == {
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "required": ["id"],
        "additionalProperties": False,
    }


def test_read_schema_lists_fields_operators_and_limits() -> None:
    read = ModelTools(Note, fields=["title", "priority"], owner="owner").read(
        default_limit=10, max_limit=50
    )
    properties = read.parameters["properties"]

    condition = properties["filter"]["items"]["anyOf"][0]
    assert condition["properties"]["field"]["enum"] == ["id", "title", "priority"]
    assert set(condition["properties"]["operator"]["enum"]) == {
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "contains",
        "icontains",
        "startswith",
        "isnull",
    }
    or_group = properties["filter"]["items"]["anyOf"][1]
    assert or_group["properties"]["or"]["items"] == condition
    assert properties["sort"]["items"]["properties"]["direction"]["enum"] == ["asc", "desc"]
    assert properties["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 50,
        "default": 10,
        "description": "Most rows to return.",
    }
    assert properties["result_type"]["enum"] == ["run_query", "count", "exists"]
    assert read.name == "read_notes"


def test_default_names_and_custom_names() -> None:
    tools = ModelTools(Note, fields=["title"], owner="owner")

    assert [
        t.name for t in (tools.read(), tools.get(), tools.create(), tools.update(), tools.destroy())
    ] == ["read_notes", "get_note", "create_note", "update_note", "destroy_note"]
    custom = tools.read("search_my_notes", description="Search the notes.")
    assert (custom.name, custom.description) == ("search_my_notes", "Search the notes.")


def test_a_model_without_a_row_scope_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"needs a row scope.*scope=None"):
        ModelTools(Group, fields=["name"])
    # ... unless every row is exposed on purpose.
    assert ModelTools(Group, fields=["name"], scope=None).read().name == "read_groups"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": ["title", "colour"]}, "Note has no field 'colour'. Its fields are: id, owner"),
        ({"fields": ["title"], "writable": ["created_at"]}, "created_at cannot be writable"),
        ({"fields": ["title"], "scope": "mine"}, "has no method 'mine'"),
        ({"fields": ["title"], "owner": "title"}, "must be a ForeignKey to the user model"),
        ({"fields": "title", "owner": "owner"}, "pass a list of names, or '__all__'"),
    ],
)
def test_configuration_mistakes_are_explained(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ModelTools(Note, **kwargs)  # type: ignore[arg-type]


def test_tool_names_must_suit_providers() -> None:
    with pytest.raises(ConfigurationError, match="'read notes' is not allowed"):
        ModelTools(Note, fields=["title"], owner="owner").read("read notes")
