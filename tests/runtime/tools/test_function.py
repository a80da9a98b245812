from __future__ import annotations

import datetime
import re
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from django.contrib.auth.models import AnonymousUser, User
from pydantic import BaseModel, Field

from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.tools import FunctionTool, ToolError, registry, tool
from tests.testapp.models import Note

MakeUser = Callable[..., Awaitable[User]]


class Unit(Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Window(BaseModel):
    start: datetime.date
    days: int = 7


@tool
def forecast(
    city: str,
    window: Window,
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    max_items: Annotated[int, Field(ge=1, le=10)] = 3,
) -> dict[str, Any]:
    """Weather forecast for a city.

    Args:
        city: City name, e.g. "Paris".
        window: Which days.
        unit: Temperature unit.
        detail: How much to say.
        max_items: Most forecast items.
    """
    return {
        "city": city,
        "start": window.start,
        "days": window.days,
        "unit": unit,
        "detail": detail,
        "max_items": max_items,
    }


def test_schema_from_type_hints_and_docstring() -> None:
    assert isinstance(forecast, FunctionTool)
    assert forecast.name == "forecast"
    assert forecast.description == "Weather forecast for a city."
    schema = forecast.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["city", "window"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["city"] == {"type": "string", "description": 'City name, e.g. "Paris".'}
    assert properties["detail"]["enum"] == ["short", "long"]
    assert properties["max_items"]["maximum"] == 10
    assert properties["unit"]["$ref"] == "#/$defs/Unit"
    assert schema["$defs"]["Window"]["properties"]["start"]["format"] == "date"
    # Still callable as the function.
    assert forecast("Oslo", Window(start=datetime.date(2026, 1, 1)))["city"] == "Oslo"


async def test_arguments_are_validated_and_results_made_json() -> None:
    result = await forecast.acall(
        {"city": "Paris", "window": {"start": "2026-07-14"}, "unit": "fahrenheit"}, None
    )
    assert result == {
        "city": "Paris",
        "start": "2026-07-14",
        "days": 7,
        "unit": "fahrenheit",
        "detail": "short",
        "max_items": 3,
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"city": "Paris", "window": {"start": "2026-07-14"}, "when": "now"},
            "Unknown arguments provided: when. Valid arguments are: city, window, unit, detail, "
            "max_items.",
        ),
        (
            {"window": {"start": "2026-07-14"}},
            "Invalid arguments for 'forecast':\n- city: Field required",
        ),
        (
            {"city": "Paris", "window": {"start": "soon"}},
            "- window.start: Input should be a valid date",
        ),
        (
            {"city": "Paris", "window": {"start": "2026-07-14"}, "max_items": 11},
            "- max_items: Input should be less than or equal to 10",
        ),
    ],
)
async def test_invalid_arguments_explain_themselves(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolError) as excinfo:
        await forecast.acall(arguments, None)
    assert message in str(excinfo.value)


@tool(
    name="my_note_count", description="How many notes the user has.", permission="testapp.view_note"
)
def note_count(actor: User, status: str | None = None) -> int:
    """Ignored: description= wins."""
    notes = Note.objects.filter(owner=actor)
    return (notes.filter(status=status) if status else notes).count()


@pytest.mark.django_db(transaction=True)
async def test_sync_function_gets_the_actor_and_may_use_the_orm(
    alice: User, bob: User, notes: dict[str, Note]
) -> None:
    assert note_count.name == "my_note_count"
    assert note_count.description == "How many notes the user has."
    assert "actor" not in note_count.parameters["properties"]
    assert await note_count.acall({}, alice) == 4
    assert await note_count.acall({"status": "archived"}, alice) == 1
    assert await note_count.acall({}, bob) == 1


@pytest.mark.django_db(transaction=True)
async def test_function_permission(make_user: MakeUser) -> None:
    nobody = await make_user("nobody")
    with pytest.raises(
        ToolError, match=re.escape("Permission denied: 'my_note_count' needs 'testapp.view_note'.")
    ):
        await note_count.acall({}, nobody)
    with pytest.raises(ToolError, match="Permission denied"):
        await note_count.acall({}, AnonymousUser())
    assert await registry.afor_actor(nobody, ["note_titles"]) == [registry.get("note_titles")]


@tool
async def greet(actor: Any, name: str = "you") -> str:
    """Say hello."""
    return f"Hello {name}, from {actor}!"


async def test_async_functions_are_awaited() -> None:
    assert await greet.acall({"name": "Ada"}, "the actor") == "Hello Ada, from the actor!"
    assert greet.parameters["properties"] == {"name": {"default": "you", "type": "string"}}
    assert "required" not in greet.parameters


@pytest.mark.django_db(transaction=True)
async def test_the_autodiscovered_function_tool_only_sees_the_actors_rows(
    alice: User, notes: dict[str, Note]
) -> None:
    titles = registry.get("note_titles")
    assert await titles.acall({"status": "published"}, alice) == ["Garden plan"]
    assert "Bob's secret" not in await titles.acall({}, alice)
    assert (
        titles.parameters["properties"]["status"]["description"] == "Only notes with this status."
    )


def test_var_args_are_refused() -> None:
    def loose(*args: int) -> None: ...

    with pytest.raises(ConfigurationError, match=r"loose: \*args and \*\*kwargs"):
        tool(loose)


def test_the_actor_annotation_may_be_a_type_checking_only_name() -> None:
    def mine(limit: int, actor: UserOnlyForTypeCheckers) -> int:  # type: ignore[name-defined]  # noqa: F821
        return limit

    assert tool(mine).parameters["properties"] == {"limit": {"type": "integer"}}

    def broken(limit: Missing) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 0

    with pytest.raises(ConfigurationError, match="cannot resolve a parameter's type"):
        tool(broken)
