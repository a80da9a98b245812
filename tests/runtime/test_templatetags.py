"""The `ai_chat` template tag library: `markdown`, `tool_badges` and `whole_seconds` filters."""

from __future__ import annotations

from typing import Any

from django.template import engines

from django_ai_chat.ui import ToolCallView, ToolsView


def render(source: str, **context: Any) -> str:
    return engines["django"].from_string(source).render(context)


def test_markdown_filter_renders_sanitised_html() -> None:
    html = render(
        "{% load ai_chat %}{{ text|markdown }}",
        text="**bold** <script>alert(1)</script> [x](javascript:alert(1))",
    )
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "javascript" not in html


def test_markdown_filter_output_is_not_escaped_again_and_none_is_empty() -> None:
    html = render("{% load ai_chat %}<div>{{ text|markdown }}</div>", text="a & b")
    assert html == "<div><p>a &amp; b</p>\n</div>"
    assert render("{% load ai_chat %}[{{ text|markdown }}]", text=None) == "[]"


TOOL_TEMPLATE = (
    "{% load ai_chat %}{% with tools=message|tool_badges %}"
    "{% for call in tools.tool_calls %}[{{ call.name }}: {{ call.arguments_preview }}]{% endfor %}"
    "{% for result in tools.tool_results %}[{{ result.name }}"
    "{% if result.is_error %} failed{% endif %}]{% endfor %}"
    "{% if not tools %}none{% endif %}{% endwith %}"
)


def test_tool_badges_filter() -> None:
    message = {
        "tool_calls": [{"id": "1", "name": "read_posts", "arguments": {"q": "<b>"}}],
        "tool_results": [{"id": "1", "content": "boom", "is_error": True}],
    }
    html = render(TOOL_TEMPLATE, message=message)
    # Values are autoescaped like any template variable.
    assert html == "[read_posts: {&quot;q&quot;:&quot;&lt;b&gt;&quot;}][read_posts failed]"


def test_tool_badges_filter_on_a_non_message_renders_nothing() -> None:
    assert render(TOOL_TEMPLATE, message="just text") == "none"


def badge_extractor(message: Any) -> ToolsView:
    return ToolsView(
        tool_calls=[ToolCallView(id="1", name="overridden", arguments={}, arguments_preview="{}")]
    )


def test_tool_badges_filter_uses_the_configured_extractor(settings: Any) -> None:
    settings.AI_CHAT_TOOLS_EXTRACTOR = "tests.runtime.test_templatetags.badge_extractor"
    assert render(TOOL_TEMPLATE, message={}) == "[overridden: {}]"


SECONDS_TEMPLATE = (
    "{% load ai_chat i18n %}{% with seconds=value|whole_seconds %}{% if seconds %}"
    "{% blocktranslate count seconds=seconds %}{{ seconds }} second{% plural %}"
    "{{ seconds }} seconds{% endblocktranslate %}{% else %}unknown{% endif %}{% endwith %}"
)


def test_whole_seconds_rounds_to_at_least_one_and_feeds_a_plural() -> None:
    assert render(SECONDS_TEMPLATE, value=0.2) == "1 second"
    assert render(SECONDS_TEMPLATE, value=2.6) == "3 seconds"
    assert render(SECONDS_TEMPLATE, value=None) == "unknown"
    assert render(SECONDS_TEMPLATE, value="soon") == "unknown"
