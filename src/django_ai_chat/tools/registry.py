"""`ToolRegistry`: the project's tools, and the subset an actor may use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.tools.tool import Tool

ToolSelection = bool | Iterable[str | Tool]
"""`True`: every registered tool; `False`: none; an iterable: these names (or `Tool` objects)."""


class ToolRegistry:
    """Tools by unique name. The process-wide instance is `django_ai_chat.tools.registry`.

    Apps fill it from their `ai_tools.py` module, which `django_ai_chat` imports at start-up.
    """

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, *tools: Tool) -> None:
        """Add tools. Registering the same object twice is harmless.

        Args:
            *tools: `Tool` objects (from `ModelTools`, `@tool`, or your own subclass).

        Raises:
            ConfigurationError: Another tool already has one of these names.
            TypeError: Something that is not a `Tool` was passed (decorate functions with `@tool`).
        """
        for tool in tools:
            if not isinstance(tool, Tool):
                raise TypeError(
                    f"register() takes Tool objects, got {tool!r}: decorate functions with @tool "
                    "and use ModelTools(...).read() and friends for models."
                )
            existing = self._tools.get(tool.name)
            if existing is not None and existing is not tool:
                raise ConfigurationError(
                    f"Two tools are named {tool.name!r} ({existing!r} and {tool!r}): tool names "
                    "must be unique across the project, pass name=... to one of them."
                )
            self._tools[tool.name] = tool

    def unregister(self, *names: str) -> None:
        """Remove tools by name; unknown names are ignored."""
        for name in names:
            self._tools.pop(name, None)

    def get(self, name: str) -> Tool:
        """The tool registered as `name`.

        Raises:
            LookupError: No tool has this name; the message lists the registered ones.
        """
        try:
            return self._tools[name]
        except KeyError:
            raise LookupError(
                f"No tool named {name!r}. Registered tools: {self._names()}."
            ) from None

    def for_actor(self, actor: Any, tools: ToolSelection = True) -> list[Tool]:
        """The selected tools `actor` may use, in registration (or selection) order.

        May query the database (permission checks): from async code use `afor_actor`.

        Args:
            actor: The user the chat belongs to; `None` in no-user mode (no permission checks,
                row scopes still apply).
            tools: `True` for every registered tool, `False` for none, or names (and/or `Tool`
                objects, used as given) to restrict the choice.

        Returns:
            The tools whose `has_permission(actor)` is true.

        Raises:
            ConfigurationError: A name is not registered.
            TypeError: `tools` is a single string (pass a list of names).
        """
        if tools is True:
            candidates = list(self._tools.values())
        elif tools is False:
            return []
        else:
            candidates = self._select(tools)
        return [tool for tool in candidates if tool.has_permission(actor)]

    async def afor_actor(self, actor: Any, tools: ToolSelection = True) -> list[Tool]:
        """Async `for_actor`, with the tools of the MCP servers (`AI_CHAT_MCP_SERVERS`) too.

        The servers are listed first, as the actor (`django_ai_chat.tools.mcp`); their tools
        come after the registered ones, behind the same permission check (in Django's sync
        thread). A registered tool wins over an MCP tool of the same name.
        """
        extra: list[Tool] = []
        if ai_chat_settings.MCP_SERVERS and tools is not False:
            from django_ai_chat.tools.mcp import aserver_tools

            extra = [t for t in await aserver_tools(actor) if t.name not in self._tools]
        return await sync_to_async(self._for_actor, thread_sensitive=True)(actor, tools, extra)

    def _for_actor(self, actor: Any, tools: ToolSelection, extra: list[Tool]) -> list[Tool]:
        if not extra:
            return self.for_actor(actor, tools)
        if tools is True:
            candidates = [*self._tools.values(), *extra]
        elif tools is False:
            return []
        else:
            candidates = self._select(tools, {t.name: t for t in extra})
        return [tool for tool in candidates if tool.has_permission(actor)]

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def _select(
        self, tools: Iterable[str | Tool], extra: dict[str, Tool] | None = None
    ) -> list[Tool]:
        if isinstance(tools, str):
            raise TypeError(f"tools={tools!r} is a string: pass a list of tool names, or True.")
        selected: dict[str, Tool] = {}
        unknown: list[str] = []
        for item in tools:
            if isinstance(item, Tool):
                selected[item.name] = item
            elif item in self._tools:
                selected[item] = self._tools[item]
            elif extra and item in extra:
                selected[item] = extra[item]
            else:
                unknown.append(item)
        if unknown:
            raise ConfigurationError(
                f"Unknown tool names: {', '.join(map(repr, unknown))}. Registered tools: "
                f"{self._names()}. Declare tools in an app's ai_tools.py and register them."
            )
        return list(selected.values())

    def _names(self) -> str:
        return ", ".join(map(repr, self._tools)) or "none"


registry = ToolRegistry()
"""The project's tools; `ai_tools.py` modules register into it."""
