"""Model-action tools, through `acall`, as the registered tools of the test app."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from django_ai_chat.tools import ModelTools, ToolError, registry
from tests.testapp.models import Note, Reminder

pytestmark = pytest.mark.django_db(transaction=True)

MakeUser = Callable[..., Awaitable[User]]


async def call(name: str, actor: Any, **arguments: Any) -> Any:
    return await registry.get(name).acall(arguments, actor)


async def titles(actor: Any, **arguments: Any) -> list[str]:
    return [row["title"] for row in await call("read_notes", actor, **arguments)]


# read --------------------------------------------------------------------------------------------


async def test_read_returns_the_exposed_fields_as_json(alice: User, notes: dict[str, Note]) -> None:
    rows = await call(
        "read_notes", alice, filter=[{"field": "title", "operator": "eq", "value": "Groceries"}]
    )

    assert rows == [
        {
            "id": notes["Groceries"].pk,
            "title": "Groceries",
            "body": "milk, eggs",
            "status": "draft",
            "priority": 1,
            "pinned": True,
            "due_at": "2026-05-01T12:00:00Z",
            "created_at": rows[0]["created_at"],
        }
    ]
    assert rows[0]["created_at"].startswith(str(notes["Groceries"].created_at.date()))
    assert "owner" not in rows[0]


async def test_a_read_tool_cannot_return_another_users_row(
    alice: User, bob: User, notes: dict[str, Note]
) -> None:
    # Bob's note matches every one of these, yet only Alice's rows come back.
    assert "Bob's secret" not in await titles(alice, limit=100)
    assert await titles(
        alice, filter=[{"field": "body", "operator": "icontains", "value": "eggs"}]
    ) == ["Groceries"]
    assert (
        await titles(
            alice, filter=[{"field": "id", "operator": "eq", "value": notes["Bob's secret"].pk}]
        )
        == []
    )
    assert await call("read_notes", alice, result_type="count") == 4
    assert await titles(bob) == ["Bob's secret"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "priority", "operator": "eq", "value": 3}, ["Garden plan"]),
        ({"field": "status", "operator": "ne", "value": "draft"}, ["Garden plan", "Books"]),
        ({"field": "priority", "operator": "gt", "value": 2}, ["Garden plan", "Tax return"]),
        ({"field": "priority", "operator": "gte", "value": 3}, ["Garden plan", "Tax return"]),
        ({"field": "priority", "operator": "lt", "value": 2}, ["Groceries"]),
        ({"field": "priority", "operator": "lte", "value": "2"}, ["Groceries", "Books"]),
        (
            {"field": "status", "operator": "in", "value": ["published", "archived"]},
            ["Garden plan", "Books"],
        ),
        ({"field": "title", "operator": "contains", "value": "an"}, ["Garden plan"]),
        ({"field": "title", "operator": "icontains", "value": "TAX"}, ["Tax return"]),
        ({"field": "title", "operator": "startswith", "value": "G"}, ["Groceries", "Garden plan"]),
        ({"field": "due_at", "operator": "isnull", "value": True}, ["Garden plan", "Books"]),
        ({"field": "due_at", "operator": "eq", "value": None}, ["Garden plan", "Books"]),
        (
            {"field": "due_at", "operator": "gt", "value": "2026-05-02T00:00:00+00:00"},
            ["Tax return"],
        ),
        # A naive timestamp is read in the project's time zone (UTC here), without a warning.
        ({"field": "due_at", "operator": "lte", "value": "2026-05-01T12:00:00"}, ["Groceries"]),
        ({"field": "pinned", "operator": "eq", "value": True}, ["Groceries"]),
        # The operator defaults to eq.
        ({"field": "title", "value": "Books"}, ["Books"]),
    ],
)
async def test_read_filter_operators(
    alice: User, notes: dict[str, Note], condition: dict[str, Any], expected: list[str]
) -> None:
    assert await titles(alice, filter=[condition]) == expected


async def test_read_conditions_are_anded_and_or_groups_ored(
    alice: User, notes: dict[str, Note]
) -> None:
    found = await titles(
        alice,
        filter=[
            {"field": "priority", "operator": "lte", "value": 3},
            {
                "or": [
                    {"field": "status", "operator": "eq", "value": "published"},
                    {"field": "pinned", "operator": "eq", "value": True},
                ]
            },
        ],
    )
    assert found == ["Groceries", "Garden plan"]


async def test_read_sort_limit_offset(alice: User, notes: dict[str, Note]) -> None:
    by_priority = [{"field": "priority", "direction": "desc"}]

    assert await titles(alice, sort=by_priority) == [
        "Tax return",
        "Garden plan",
        "Books",
        "Groceries",
    ]
    assert await titles(alice, sort=by_priority, limit=2) == ["Tax return", "Garden plan"]
    assert await titles(alice, sort=by_priority, limit=2, offset=2) == ["Books", "Groceries"]
    assert await titles(alice, sort=[{"field": "title", "direction": "asc"}], offset=3) == [
        "Tax return"
    ]


async def test_read_limit_defaults_and_is_capped(alice: User, notes: dict[str, Note]) -> None:
    await Note.objects.abulk_create(Note(owner=alice, title=f"n{i}") for i in range(130))

    assert len(await call("read_notes", alice)) == 25
    assert len(await call("read_notes", alice, limit=1000)) == 100
    assert await call("read_notes", alice, result_type="count") == 134


async def test_read_count_and_exists(alice: User, bob: User, notes: dict[str, Note]) -> None:
    pinned = [{"field": "pinned", "operator": "eq", "value": True}]

    assert await call("read_notes", alice, filter=pinned, result_type="count") == 1
    assert await call("read_notes", alice, filter=pinned, result_type="exists") is True
    stars = [{"field": "body", "operator": "contains", "value": "hidden"}]
    assert await call("read_notes", alice, filter=stars, result_type="exists") is False
    assert await call("read_notes", bob, filter=stars, result_type="exists") is True


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"colour": "red"},
            "Unknown arguments provided: colour. Valid arguments are: filter, "
            "sort, limit, offset, result_type.",
        ),
        (
            {"filter": [{"field": "owner", "value": 1}]},
            "filter[0]: unknown field 'owner'. Valid fields are: id, title, body, status",
        ),
        (
            {"filter": [{"field": "title", "operator": "like", "value": "x"}]},
            "filter[0]: unknown operator 'like'. Valid operators are: eq, ne, gt",
        ),
        (
            {"filter": [{"field": "priority", "operator": "contains", "value": "1"}]},
            "works on text fields only (title, body)",
        ),
        (
            {"filter": [{"field": "priority", "operator": "eq", "value": "high"}]},
            "Invalid value 'high' for 'priority'",
        ),
        (
            {"filter": [{"field": "due_at", "operator": "gt", "value": "next tuesday"}]},
            "Invalid value 'next tuesday' for 'due_at'",
        ),
        (
            {"filter": [{"field": "status", "operator": "in", "value": "draft"}]},
            "'in' takes a list of values",
        ),
        ({"filter": [{"or": []}]}, "filter[0]: 'or' must be a non-empty list"),
        (
            {"filter": [{"or": [{"field": "title", "value": "a", "op": "eq"}]}]},
            "filter[0].or[0]: unknown keys 'op'. Valid keys are: field, operator, value.",
        ),
        ({"filter": {"title": "x"}}, "'filter' must be a list"),
        ({"sort": [{"field": "title", "direction": "up"}]}, "direction must be 'asc' or 'desc'"),
        ({"limit": 0}, "'limit' must be an integer >= 1"),
        ({"offset": "2"}, "'offset' must be an integer >= 0"),
        ({"result_type": "sum"}, "result_type must be one of run_query, count, exists"),
    ],
)
async def test_read_invalid_arguments_explain_themselves(
    alice: User, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        ToolError,
        match=re.escape(message),
    ):
        await registry.get("read_notes").acall(arguments, alice)


# get / create / update / destroy ------------------------------------------------------------------


async def test_get_by_primary_key(alice: User, notes: dict[str, Note]) -> None:
    row = await call("get_note", alice, id=notes["Books"].pk)
    assert (row["id"], row["title"], row["status"]) == (notes["Books"].pk, "Books", "archived")


@pytest.mark.parametrize("tool", ["get_note", "update_note", "destroy_note"])
async def test_another_users_row_is_not_found(
    tool: str, alice: User, notes: dict[str, Note]
) -> None:
    secret = notes["Bob's secret"]
    arguments: dict[str, Any] = {"id": secret.pk}
    if tool == "update_note":
        arguments["title"] = "mine now"

    with pytest.raises(
        ToolError,
        match=re.escape(
            f"No note with id={secret.pk} (it does not exist or is not visible to the user)"
        ),
    ):
        await registry.get(tool).acall(arguments, alice)

    still = await Note.objects.aget(pk=secret.pk)
    assert (still.title, still.owner_id) == ("Bob's secret", secret.owner_id)


async def test_missing_or_malformed_keys_are_not_found(alice: User, notes: dict[str, Note]) -> None:
    with pytest.raises(ToolError, match="No note with id='abc'"):
        await call("get_note", alice, id="abc")
    with pytest.raises(ToolError, match="No note with id=999999"):
        await call("get_note", alice, id=999999)
    with pytest.raises(ToolError, match="Missing argument 'id'"):
        await call("get_note", alice)


async def test_create_sets_the_owner_to_the_actor(alice: User) -> None:
    row = await call(
        "create_note", alice, title="Call mum", priority=2, due_at="2026-06-01T09:30:00+02:00"
    )

    note = await Note.objects.aget(pk=row["id"])
    assert note.owner_id == alice.pk
    assert (row["title"], row["status"], row["priority"], row["pinned"]) == (
        "Call mum",
        "draft",
        2,
        False,
    )
    assert row["due_at"] == "2026-06-01T07:30:00Z"


async def test_create_cannot_assign_the_row_to_someone_else(alice: User, bob: User) -> None:
    with pytest.raises(ToolError, match="Unknown arguments provided: owner"):
        await call("create_note", alice, title="for bob", owner=bob.pk)
    assert await Note.objects.filter(owner=bob).acount() == 0


async def test_create_validates_with_full_clean(alice: User) -> None:
    with pytest.raises(ToolError) as excinfo:
        await call("create_note", alice, title="x" * 121, status="urgent")

    message = str(excinfo.value)
    assert message.startswith("Could not create the note:\n")
    assert "- title: Ensure this value has at most 120 characters (it has 121)." in message
    assert "- status: Value 'urgent' is not a valid choice." in message
    assert await Note.objects.acount() == 0

    with pytest.raises(ToolError, match=re.escape("- title: This field cannot be blank.")):
        await call("create_note", alice, body="no title")


async def test_update_changes_only_the_given_fields(alice: User, notes: dict[str, Note]) -> None:
    books = notes["Books"]
    row = await call("update_note", alice, id=books.pk, status="published", due_at=None)

    assert (row["title"], row["status"], row["priority"]) == ("Books", "published", 2)
    fresh = await Note.objects.aget(pk=books.pk)
    assert (fresh.status, fresh.body, fresh.owner_id) == ("published", "", alice.pk)


async def test_update_validates_and_saves_nothing_on_error(
    alice: User, notes: dict[str, Note]
) -> None:
    books = notes["Books"]
    with pytest.raises(ToolError, match="Could not update the note:\n- title: This field cannot"):
        await call("update_note", alice, id=books.pk, title="", priority=7)
    with pytest.raises(ToolError, match="Nothing to update: pass 'id' and at least one of: title"):
        await call("update_note", alice, id=books.pk)

    assert (await Note.objects.aget(pk=books.pk)).priority == 2


async def test_destroy_deletes_the_actors_row(alice: User, notes: dict[str, Note]) -> None:
    books = notes["Books"]
    result = await call("destroy_note", alice, id=books.pk)

    assert result["deleted"]["title"] == "Books"
    assert not await Note.objects.filter(pk=books.pk).aexists()
    assert await Note.objects.acount() == 4


# scope and permissions --------------------------------------------------------------------------


async def test_a_write_that_would_leave_the_scope_is_rolled_back(alice: User) -> None:
    # Scope: only unpinned notes; pinning one would move it out of the user's reach.
    unpinned = ModelTools(
        Note,
        fields=["title", "pinned"],
        scope=lambda qs, actor: qs.filter(owner=actor, pinned=False),
        on_create=lambda note, actor: setattr(note, "owner", actor),
    )
    with pytest.raises(
        ToolError, match=re.escape("would not be visible to the user. Nothing was saved.")
    ):
        await unpinned.create().acall({"title": "hidden", "pinned": True}, alice)
    assert await Note.objects.acount() == 0

    row = await unpinned.create().acall({"title": "visible"}, alice)
    with pytest.raises(ToolError, match="Nothing was saved"):
        await unpinned.update().acall({"id": row["id"], "pinned": True}, alice)
    assert not (await Note.objects.aget(pk=row["id"])).pinned


async def test_queryset_method_scope_by_default(
    alice: User, bob: User, notes: dict[str, Note]
) -> None:
    # Note's queryset defines for_actor(actor); without owner= or scope= it is used.
    tools = ModelTools(Note, fields=["title"])
    rows = await tools.read().acall({}, bob)
    assert [row["title"] for row in rows] == ["Bob's secret"]


async def test_missing_model_permission_is_refused_at_call_time(
    notes: dict[str, Note], make_user: MakeUser
) -> None:
    reader = await make_user("reader", "testapp.view_note")
    with pytest.raises(
        ToolError,
        match=re.escape(
            "Permission denied: 'create_note' needs the 'testapp.add_note' permission."
        ),
    ):
        await call("create_note", reader, title="nope")
    with pytest.raises(
        ToolError,
        match=re.escape(
            "Permission denied: 'read_notes' needs the 'testapp.view_note' or 'testapp.change_note'"
        ),
    ):
        await call("read_notes", AnonymousUser())
    assert await call("read_notes", reader) == []


async def test_superuser_has_every_permission_but_still_only_own_rows(
    notes: dict[str, Note],
) -> None:
    root = await User.objects.acreate_superuser("root")
    assert await call("read_notes", root) == []
    row = await call("create_note", root, title="root's")
    assert (await Note.objects.aget(pk=row["id"])).owner_id == root.pk


async def test_no_user_mode_skips_permissions_and_scopes_with_none(
    alice: User, notes: dict[str, Note]
) -> None:
    # actor=None: no permission checks; owner="owner" then means rows without an owner.
    assert await call("read_notes", None) == []
    with pytest.raises(ToolError, match=re.escape("- owner: This field cannot be null.")):
        await call("create_note", None, title="orphan")


async def test_permissions_can_be_left_to_the_row_scope(
    notes: dict[str, Note], make_user: MakeUser
) -> None:
    plain = await make_user("plain")
    open_notes = ModelTools(Note, fields=["title"], owner="owner", check_permissions=False)

    row = await open_notes.create().acall({"title": "mine"}, plain)
    assert [r["title"] for r in await open_notes.read().acall({}, plain)] == ["mine"]
    assert row["title"] == "mine"
    # An anonymous user owns nothing and cannot create.
    assert await open_notes.read().acall({}, AnonymousUser()) == []
    with pytest.raises(ToolError, match=re.escape("Only signed-in users can create a note.")):
        await open_notes.create().acall({"title": "anon"}, AnonymousUser())


async def test_a_foreign_key_cannot_name_a_row_the_actor_cannot_see(
    alice: User, notes: dict[str, Note]
) -> None:
    # Note's queryset has for_actor(): a reminder may only point at one of the actor's notes,
    # and the answer for another user's note is the one for a note that does not exist.
    reminders = ModelTools(
        Reminder, fields=["note", "text"], owner="owner", check_permissions=False
    )
    create, update = reminders.create(), reminders.update()
    secret = notes["Bob's secret"].pk
    with pytest.raises(ToolError, match="not visible to the user") as foreign:
        await create.acall({"note": secret, "text": "peek"}, alice)
    with pytest.raises(ToolError) as missing:
        await create.acall({"note": 999_999, "text": "peek"}, alice)
    assert str(missing.value) == str(foreign.value).replace(str(secret), "999999")
    assert await Reminder.objects.acount() == 0

    mine = await create.acall({"note": notes["Books"].pk, "text": "read one"}, alice)
    with pytest.raises(ToolError, match="not visible to the user"):
        await update.acall({"id": mine["id"], "note": secret}, alice)
    saved = await Reminder.objects.aget(pk=mine["id"])
    assert saved.note_id == notes["Books"].pk
