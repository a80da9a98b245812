"""`{% load ai_chat %}`: the runtime's template filters.

- `{{ message.text|markdown }}`: sanitised HTML from Markdown (`django_ai_chat.markdown`).
- `{% with tools=message|tool_badges %}…{% for call in tools.tool_calls %}`: the message's tool
  calls and results for badges, through the extractor `AI_CHAT_TOOLS_EXTRACTOR` selects.
- `{% with usage=message|usage %}{% if usage %}{{ usage }}…{{ usage.detail }}`: what an answer,
  or a conversation annotated by `with_usage()`, cost (`django_ai_chat.ui.usage_view`).
- `{% blocktranslate count seconds=message.thinking_seconds|whole_seconds %}`: a duration as
  the whole number of seconds a person reads ("Thought for 3 seconds"); `None` stays `None`.
- `{% ai_chat_i18n %}`: the JSON catalog chat.js translates its strings with, in the active
  language (`django_ai_chat.i18n`); put it inside the chat's root element.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from django_ai_chat.i18n import catalog_script
from django_ai_chat.markdown import render_markdown
from django_ai_chat.ui import ToolsView, UsageView, get_tools_extractor, usage_view

register = template.Library()


@register.filter(name="markdown", is_safe=True)
def markdown(text: object) -> SafeString:
    """Render Markdown as sanitised HTML; `None` renders as nothing.

    Args:
        text: Markdown source (non-strings are converted with `str`).

    Returns:
        Safe HTML.
    """
    if text is None:
        return render_markdown("")
    return render_markdown(str(text))


@register.filter(name="tool_badges")
def tool_badges(message: Any) -> ToolsView:
    """The tool calls and results of `message`, via `get_tools_extractor()`.

    Args:
        message: A message instance or dict with `tool_calls` / `tool_results`.

    Returns:
        A `ToolsView`; empty (falsy) for anything that is not a message, so a template never
        fails on it.
    """
    try:
        return get_tools_extractor()(message)
    except ValueError:
        return ToolsView()


@register.filter(name="usage")
def usage(item: Any) -> UsageView:
    """What `item` (a message, or a conversation annotated by `with_usage()`) cost.

    Returns:
        A `UsageView` (`str()`: "1,234 tokens · $0.0042", `.detail` for a tooltip); falsy when
        nothing was used or `item` is neither.
    """
    return usage_view(item)


@register.filter(name="whole_seconds")
def whole_seconds(value: object) -> int | None:
    """A duration in seconds, rounded to a whole number of at least 1 (`None` when unknown).

    "Thought for 0 seconds" would read as if nothing was thought: a measured stretch of
    thinking always shows as one second or more.

    Args:
        value: Seconds (a number, or `None` when nothing was measured).

    Returns:
        The rounded number, or `None` for `None` and for anything that is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(1, round(value))


@register.simple_tag(name="ai_chat_i18n")
def ai_chat_i18n() -> SafeString:
    """The `<script type="application/json" data-chat-i18n>` catalog of chat.js's strings.

    Returns:
        Safe HTML, in the active language (`django_ai_chat.i18n.catalog_script`).
    """
    return catalog_script()


@register.filter(name="pending_approvals")
def pending_approvals(message: Any) -> list[Any]:
    """The tool calls an unfinished answer waits to have approved (its approval cards).

    Only unfinished answers are looked up (one query, kept on the message for the template's
    other uses); a message model without approvals (an app generated before them) has none.
    """
    cached = getattr(message, "_pending_approvals", None)
    if cached is not None:
        return list(cached)
    found: list[Any] = []
    approvals = getattr(message, "approvals", None)
    if approvals is not None and not getattr(message, "complete", True):
        found = [approval for approval in approvals.all() if approval.is_pending]
    message._pending_approvals = found
    return found
