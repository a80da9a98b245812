"""Tool call/result extraction for UIs (ash_ai's ChatUI.Tools.extract), with its override seam."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.ui import (
    ToolCallView,
    ToolResultView,
    ToolsView,
    extract_tools,
    get_tools_extractor,
)


def test_calls_and_results_in_our_loops_shape() -> None:
    view = extract_tools(
        {
            "tool_calls": [
                {"call_id": "c1", "name": "read_posts", "arguments": {"limit": 2}},
            ],
            "tool_results": [
                {"call_id": "c1", "name": "read_posts", "content": [{"id": 1}], "is_error": False}
            ],
        }
    )
    assert view.tool_calls == [
        ToolCallView(
            id="c1", name="read_posts", arguments={"limit": 2}, arguments_preview='{"limit":2}'
        )
    ]
    assert view.tool_results == [
        ToolResultView(
            id="c1",
            name="read_posts",
            content=[{"id": 1}],
            is_error=False,
            content_preview='[{"id":1}]',
        )
    ]
    assert view


def test_openai_style_entries_and_json_strings() -> None:
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
    }
    view = extract_tools(
        {
            "tool_calls": [json.dumps(call)],
            "tool_results": json.dumps([{"tool_call_id": "call_9", "content": '{"temp": 21}'}]),
        }
    )
    assert [(c.id, c.name, c.arguments) for c in view.tool_calls] == [
        ("call_9", "weather", {"city": "Paris"})
    ]
    # The result's name comes from the matching call; JSON content is previewed compactly.
    result = view.tool_results[0]
    assert (result.id, result.name, result.content_preview) == ("call_9", "weather", '{"temp":21}')


def test_missing_ids_get_defaults_and_undecodable_arguments_are_kept_raw() -> None:
    view = extract_tools(
        {
            "tool_calls": [{"name": "search", "arguments": "{not json"}],
            "tool_results": [{"content": "plain text"}],
        }
    )
    assert view.tool_calls[0].id == "call_unknown"
    assert view.tool_calls[0].arguments == {"raw": "{not json"}
    assert view.tool_results[0].id == "tool_result"
    assert view.tool_results[0].name is None
    assert view.tool_results[0].content_preview == "plain text"


def test_malformed_entries_are_skipped_never_raised() -> None:
    view = extract_tools(
        {
            "tool_calls": [
                None,
                42,
                "not json",
                [],
                {"arguments": {}},  # no name
                {"name": 7},  # name not a string
                {"function": "weather"},  # function not an object
                {"name": "ok", "arguments": None},
                {"name": "list_args", "arguments": [1, 2]},
            ],
            "tool_results": [None, "nope", 3.5, {"content": {"a": {1, 2}}}],
        }
    )
    assert [(c.name, c.arguments) for c in view.tool_calls] == [
        ("ok", {}),
        ("list_args", {"raw": [1, 2]}),
    ]
    # A set is not JSON: the preview falls back to its text instead of failing.
    assert len(view.tool_results) == 1
    assert view.tool_results[0].content_preview.startswith('{"a":')


@pytest.mark.parametrize("tool_calls", [None, "garbage", 5, {"name": "x"}, ""])
def test_non_list_tool_calls_give_an_empty_view(tool_calls: Any) -> None:
    view = extract_tools({"tool_calls": tool_calls, "tool_results": None})
    assert view == ToolsView()
    assert not view


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(True, True), ("true", True), (False, False), ("false", False), (1, False), (None, False)],
)
def test_is_error_only_for_true(stored: Any, expected: bool) -> None:
    view = extract_tools({"tool_results": [{"id": "r", "content": "x", "is_error": stored}]})
    assert view.tool_results[0].is_error is expected


def test_previews_are_bounded_and_on_one_line() -> None:
    long_text = "word \n\t " * 100
    view = extract_tools(
        {
            "tool_calls": [{"name": "big", "arguments": {"q": "x" * 500}}],
            "tool_results": [{"id": "r", "content": long_text}],
        }
    )
    call_preview = view.tool_calls[0].arguments_preview
    result_preview = view.tool_results[0].content_preview
    assert len(call_preview) == 80
    assert call_preview.startswith('{"q":"xxx')
    assert call_preview.endswith("…")
    assert len(result_preview) == 180
    assert "\n" not in result_preview
    assert "  " not in result_preview
    assert result_preview.startswith("word word")
    # The full values stay available for a details view.
    assert view.tool_calls[0].arguments == {"q": "x" * 500}
    assert view.tool_results[0].content == long_text


def test_objects_and_model_like_instances() -> None:
    message = SimpleNamespace(
        text="hi", tool_calls=[{"id": "a", "name": "t", "arguments": {}}], tool_results=None
    )
    view = extract_tools(message)
    assert [c.name for c in view.tool_calls] == ["t"]
    assert view.tool_results == []


@pytest.mark.parametrize("not_a_message", [None, 3, "text", ["a"], object()])
def test_not_a_message_is_a_clear_error(not_a_message: Any) -> None:
    with pytest.raises(ValueError, match=r"extract_tools\(\) expects a message"):
        extract_tools(not_a_message)


def custom_extractor(message: Any) -> ToolsView:
    return ToolsView(
        tool_calls=[ToolCallView(id="x", name="custom", arguments={}, arguments_preview="{}")]
    )


def test_override_seam(settings: Any) -> None:
    assert get_tools_extractor() is extract_tools
    settings.AI_CHAT_TOOLS_EXTRACTOR = "tests.runtime.test_ui.custom_extractor"
    extractor = get_tools_extractor()
    assert extractor({"tool_calls": []}).tool_calls[0].name == "custom"


@pytest.mark.parametrize("path", ["tests.runtime.test_ui.nope", "no.such.module", "json.__doc__"])
def test_bad_override_is_a_configuration_error(settings: Any, path: str) -> None:
    settings.AI_CHAT_TOOLS_EXTRACTOR = path
    with pytest.raises(ConfigurationError, match="AI_CHAT_TOOLS_EXTRACTOR"):
        get_tools_extractor()
