"""Tool calls and results of a stored message, shaped for a UI (badges, collapsible details).

Mirrors ash_ai's `AshAi.ChatUI.Tools.extract/1`: whatever shape the entries were stored in
(our loop's events, OpenAI-style `function.name`, JSON strings, missing ids), the UI gets the same
small dataclasses with bounded previews; malformed entries are skipped, never raised.

Projects can replace the extractor: `AI_CHAT_TOOLS_EXTRACTOR = "myapp.chat_ui.extract"` (a
callable taking the message and returning a `ToolsView`), used by `get_tools_extractor()` and by
the `tool_badges` template filter.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from django.utils import formats
from django.utils.module_loading import import_string
from django.utils.translation import gettext, ngettext

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError

__all__ = [
    "ARGUMENTS_PREVIEW_CHARS",
    "CONTENT_PREVIEW_CHARS",
    "CONTENT_TEXT_CHARS",
    "ToolCallView",
    "ToolResultView",
    "ToolsExtractor",
    "ToolsView",
    "UsageView",
    "extract_tools",
    "format_cost",
    "get_tools_extractor",
    "usage_view",
]

logger = logging.getLogger(__name__)

ARGUMENTS_PREVIEW_CHARS: Final = 80
CONTENT_PREVIEW_CHARS: Final = 180
CONTENT_TEXT_CHARS: Final = 4000

_WHITESPACE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ToolCallView:
    """One tool call the model made.

    Attributes:
        id: The provider's call id (`"call_unknown"` when it was not stored).
        name: The tool's name.
        arguments: The decoded arguments; `{"raw": text}` when they were not a JSON object.
        arguments_preview: Compact JSON of the arguments, at most 80 characters.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    arguments_preview: str

    @property
    def argument_items(self) -> list[tuple[str, str]]:
        """The arguments as (name, value) rows for a card; values that are not text as JSON."""
        return [
            (str(key), value if isinstance(value, str) else _json(value))
            for key, value in self.arguments.items()
        ]


@dataclass(frozen=True, slots=True)
class ToolResultView:
    """What a tool returned.

    Attributes:
        id: The call id it answers (`"tool_result"` when it was not stored).
        name: The tool's name, from the result or its matching call; `None` when unknown.
        content: The result as stored.
        is_error: True only when stored as `true` / `"true"`.
        content_preview: One line of the content, at most 180 characters.
    """

    id: str
    name: str | None
    content: Any
    is_error: bool
    content_preview: str

    @property
    def content_text(self) -> str:
        """The content for a card's expanded view (at most `CONTENT_TEXT_CHARS` characters).

        Text as it is, anything else as indented JSON.
        """
        content = _decode(self.content)
        if isinstance(content, str):
            text = content
        else:
            text = json.dumps(content, indent=2, ensure_ascii=False, default=str)
        return _preview_block(text, CONTENT_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class ToolsView:
    """The tool calls and results of one message, in stored order."""

    tool_calls: list[ToolCallView] = field(default_factory=list)
    tool_results: list[ToolResultView] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tool_calls or self.tool_results)

    @property
    def cards(self) -> list[tuple[ToolCallView | None, ToolResultView | None]]:
        """One card per tool use: each call with its result, then results without a call.

        A result matches its call by id, else by position when it answers no other call.
        """
        by_id = {result.id: result for result in self.tool_results}
        used: set[int] = set()
        cards: list[tuple[ToolCallView | None, ToolResultView | None]] = []
        for index, call in enumerate(self.tool_calls):
            result = by_id.get(call.id)
            if result is None and index < len(self.tool_results):
                candidate = self.tool_results[index]
                if candidate.id not in {c.id for c in self.tool_calls}:
                    result = candidate
            if result is not None:
                used.add(id(result))
            cards.append((call, result))
        cards += [(None, r) for r in self.tool_results if id(r) not in used]
        return cards


ToolsExtractor = Callable[[Any], ToolsView]


def extract_tools(message: Any) -> ToolsView:
    """Extract the tool calls and results of a message for display.

    Args:
        message: A message model instance, a dict, or any object with `tool_calls` and/or
            `tool_results` attributes. Each is a list of dicts (or a JSON string of one); entries
            may be JSON strings, use `function.name`, `call_id`/`tool_call_id`, or lack ids.

    Returns:
        The calls (entries without a name are skipped) and results, with previews.

    Raises:
        ValueError: `message` is not a message at all (no `tool_calls`/`tool_results`).
    """
    if isinstance(message, Mapping):
        raw_calls, raw_results = message.get("tool_calls"), message.get("tool_results")
    elif hasattr(message, "tool_calls") or hasattr(message, "tool_results"):
        raw_calls = getattr(message, "tool_calls", None)
        raw_results = getattr(message, "tool_results", None)
    else:
        raise ValueError(
            f"extract_tools() expects a message (a model instance, a dict or an object with "
            f"'tool_calls'/'tool_results'), got {type(message).__name__!r}."
        )
    calls = [c for c in map(_call_view, _entries(raw_calls)) if c is not None]
    names = {c.id: c.name for c in calls}
    results = [r for r in (_result_view(e, names) for e in _entries(raw_results)) if r]
    return ToolsView(tool_calls=calls, tool_results=results)


def get_tools_extractor() -> ToolsExtractor:
    """The extractor the UI uses: `AI_CHAT_TOOLS_EXTRACTOR` if set, else `extract_tools`.

    Raises:
        ConfigurationError: The setting does not name an importable callable.
    """
    path = ai_chat_settings.TOOLS_EXTRACTOR
    return extract_tools if not path else _import_extractor(str(path))


@lru_cache(maxsize=8)
def _import_extractor(path: str) -> ToolsExtractor:
    try:
        extractor = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f"AI_CHAT_TOOLS_EXTRACTOR={path!r} cannot be imported ({exc}). Set it to the dotted "
            "path of a callable taking a message and returning a django_ai_chat.ui.ToolsView."
        ) from exc
    if not callable(extractor):
        raise ConfigurationError(f"AI_CHAT_TOOLS_EXTRACTOR={path!r} is not callable.")
    return extractor  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _entries(raw: Any) -> Iterable[Mapping[str, Any]]:
    raw = _decode(raw)
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        logger.debug("Ignored tool entries that are not a list: %r", type(raw))
        return []
    return [e for e in map(_decode, raw) if isinstance(e, Mapping)]


def _text_id(entry: Mapping[str, Any], keys: tuple[str, ...], default: str) -> str:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            return str(value)
    return default


def _name(entry: Mapping[str, Any]) -> str | None:
    name = entry.get("name") or entry.get("tool_name")
    function = entry.get("function")
    if not name and isinstance(function, Mapping):
        name = function.get("name")
    return name if isinstance(name, str) and name else None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _preview_block(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _preview(text: str, limit: int) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _call_view(entry: Mapping[str, Any]) -> ToolCallView | None:
    try:
        name = _name(entry)
        if name is None:
            return None
        function = entry.get("function")
        raw = entry.get("arguments", entry.get("args", entry.get("input")))
        if raw is None and isinstance(function, Mapping):
            raw = function.get("arguments")
        decoded = _decode(raw)
        if decoded is None or decoded == "":
            arguments: dict[str, Any] = {}
        elif isinstance(decoded, Mapping):
            arguments = dict(decoded)
        else:
            arguments = {"raw": raw}
        return ToolCallView(
            id=_text_id(entry, ("id", "call_id", "tool_call_id"), "call_unknown"),
            name=name,
            arguments=arguments,
            arguments_preview=_preview(_json(arguments), ARGUMENTS_PREVIEW_CHARS),
        )
    except Exception:  # the UI must render even when one stored entry is odd
        logger.debug("Skipped a malformed tool call entry", exc_info=True)
        return None


def _result_view(entry: Mapping[str, Any], names: Mapping[str, str]) -> ToolResultView | None:
    try:
        result_id = _text_id(entry, ("tool_call_id", "id", "call_id"), "tool_result")
        content = entry.get("content", entry.get("result", entry.get("output")))
        decoded = _decode(content)
        text = decoded if isinstance(decoded, str) else _json(decoded)
        is_error = entry.get("is_error")
        return ToolResultView(
            id=result_id,
            name=_name(entry) or names.get(result_id),
            content=content,
            is_error=is_error is True or is_error == "true",
            content_preview=_preview(text, CONTENT_PREVIEW_CHARS),
        )
    except Exception:  # the UI must render even when one stored entry is odd
        logger.debug("Skipped a malformed tool result entry", exc_info=True)
        return None


def format_cost(cost: Decimal | None) -> str:
    """US dollars for people: `$0.0042`, `$1.23`, `<$0.0001`, `""` when unknown."""
    if cost is None:
        return ""
    if cost == 0:
        return "$0"
    if cost < Decimal("0.0001"):
        return "<$0.0001"
    if cost < 1:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"


@dataclass(frozen=True)
class UsageView:
    """What an answer (or a conversation's answers) cost, ready for a template.

    `str()` is the short form (`1,234 tokens · $0.0042`); `detail` the long one (input, cached,
    output, reasoning, model) for a tooltip. Falsy when nothing was used.
    """

    tokens: int = 0
    cost: Decimal | None = None
    detail: str = ""

    def __bool__(self) -> bool:
        return self.tokens > 0

    def __str__(self) -> str:
        text = ngettext("%(count)s token", "%(count)s tokens", self.tokens) % {
            "count": _number(self.tokens)
        }
        cost = format_cost(self.cost)
        return f"{text} · {cost}" if cost else text


def _number(value: int) -> str:
    # Grouped as the active language writes it: 1,234 / 1 234 / 1.234.
    return formats.number_format(value, force_grouping=True)


def usage_view(item: Any) -> UsageView:
    """The usage of a message, or of a conversation annotated by `with_usage()`.

    A message gives its token fields; a conversation from `ConversationQuerySet.with_usage()`
    its `total_tokens` and `total_cost`; anything else an empty view.
    """
    if hasattr(item, "total_tokens"):
        return UsageView(tokens=int(item.total_tokens or 0), cost=item.total_cost)
    input_tokens = getattr(item, "input_tokens", None)
    output_tokens = getattr(item, "output_tokens", None)
    if not isinstance(input_tokens, int) or not isinstance(output_tokens, int):
        return UsageView()
    parts = [gettext("%(count)s in") % {"count": _number(input_tokens)}]
    if cached := getattr(item, "cache_read_tokens", 0):
        parts[-1] += " " + gettext("(%(count)s cached)") % {"count": _number(cached)}
    parts.append(gettext("%(count)s out") % {"count": _number(output_tokens)})
    if reasoning := getattr(item, "reasoning_tokens", 0):
        parts[-1] += " " + gettext("(%(count)s reasoning)") % {"count": _number(reasoning)}
    if model_name := getattr(item, "model_name", ""):
        parts.append(str(model_name))
    cost = getattr(item, "cost", None)
    if cost is not None:
        parts.append(format_cost(cost))
    return UsageView(tokens=input_tokens + output_tokens, cost=cost, detail=" · ".join(parts))
