"""Adapter from the package's duck-typed tools to a pydantic-ai toolset that never raises."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from pydantic_ai.exceptions import ApprovalRequired, ToolFailed
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_core import SchemaValidator, core_schema

from django_ai_chat.exceptions import ConfigurationError, ToolError

if TYPE_CHECKING:
    from pydantic_ai.tools import RunContext

logger = logging.getLogger("django_ai_chat.loop")

# Failed calls go back to the model and the loop is bounded by `max_rounds`, so pydantic-ai's own
# retry budget must never run out first (it would end the run with an exception).
UNBOUNDED_RETRIES = 1_000_000

# Errors whose text is meant for the model; anything else may carry internals (SQL, paths), so the
# model only learns its type (CVE-2026-82580 in ash_ai was exactly this leak).
_SAFE_ERRORS: tuple[type[Exception], ...] = (ToolError, ValueError, TypeError, LookupError)


class ToolLike(Protocol):
    """What the loop needs from a tool (`django_ai_chat.tools.Tool` satisfies it)."""

    @property
    def name(self) -> str:
        """Name the model calls the tool by."""

    @property
    def description(self) -> str:
        """What the tool does, for the model."""

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON schema (an object) of the arguments."""

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Run the tool as `actor`; raise on failure."""


ToolsArg: TypeAlias = bool | Sequence[str] | Sequence[ToolLike]
"""`True` (every tool the actor may use), `False`, a list of tool names, or tool objects."""

RunOnce: TypeAlias = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""`run_once(call_id, call)`: runs an approved call at most once (a retried run gets its result)."""

CANNOT_ASK = (
    "Tool {name!r} needs the user's approval before it runs, and this chat cannot ask for it: "
    "it was not run. Tell the user."
)


def _safe_error_text(name: str, error: Exception) -> str:
    if isinstance(error, _SAFE_ERRORS):
        return str(error) or type(error).__name__
    from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError

    if isinstance(error, ObjectDoesNotExist | PermissionDenied):
        return str(error) or type(error).__name__
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    logger.exception("Tool %r failed", name)
    return f"Tool {name!r} failed with an internal error ({type(error).__name__})."


class ActorToolset(AbstractToolset[Any]):
    """Exposes duck-typed tools to pydantic-ai, each call running as the actor."""

    # Any JSON object passes; the tool itself validates its arguments and raises.
    _validator = SchemaValidator(
        core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
    )

    def __init__(
        self,
        tools: Sequence[ToolLike],
        actor: Any,
        *,
        can_pause: bool = True,
        run_once: RunOnce | None = None,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._actor = actor
        self._can_pause = can_pause
        self._run_once = run_once

    @property
    def id(self) -> str:
        return "django_ai_chat"

    def definitions(self) -> list[ToolDefinition]:
        """The tools as the model is told of them (what `get_tools` offers through the agent)."""
        return [
            ToolDefinition(
                name=name, description=tool.description, parameters_json_schema=tool.parameters
            )
            for name, tool in self._tools.items()
        ]

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return {
            definition.name: ToolsetTool(
                toolset=self,
                tool_def=definition,
                max_retries=UNBOUNDED_RETRIES,
                args_validator=self._validator,
            )
            for definition in self.definitions()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        from django_ai_chat.tools.tool import needs_approval

        target = self._tools[name]
        if ctx.tool_call_approved:
            if self._run_once is not None and ctx.tool_call_id:
                return await self._run_once(ctx.tool_call_id, lambda: self._call(name, tool_args))
            return await self._call(name, tool_args)
        if needs_approval(target, tool_args, self._actor):
            if not self._can_pause:
                raise ToolFailed(CANNOT_ASK.format(name=name))
            # pydantic-ai ends the run with `DeferredToolRequests`; the loop pauses there.
            raise ApprovalRequired()
        return await self._call(name, tool_args)

    async def _call(self, name: str, tool_args: dict[str, Any]) -> Any:
        try:
            return await self._tools[name].acall(tool_args, self._actor)
        except Exception as error:
            # `ToolFailed` reaches the model as a failed result without spending a retry.
            raise ToolFailed(_safe_error_text(name, error)) from error

    def describe(self, name: str, arguments: dict[str, Any]) -> list[tuple[str, str]]:
        """The arguments of a call of `name` as `(label, value)` pairs (the approval card)."""
        from django_ai_chat.tools.tool import describe_arguments

        target = self._tools.get(name)
        describe = getattr(target, "describe_arguments", None)
        if callable(describe):
            return [(str(label), str(value)) for label, value in describe(arguments)]
        parameters = getattr(target, "parameters", None) or {}
        return describe_arguments(parameters, arguments)


async def resolve_tools(tools: ToolsArg, actor: Any) -> list[ToolLike]:
    if tools is False:
        return []
    if tools is not True and not isinstance(tools, Sequence):
        raise TypeError(f"tools must be True, False or a list, not {tools!r}")
    objects = [] if tools is True else [t for t in tools if not isinstance(t, str)]
    names = [t for t in tools if isinstance(t, str)] if not isinstance(tools, bool) else []
    if tools is True or names:
        try:
            from django_ai_chat.tools import registry
        except ImportError as error:
            if names:
                raise ConfigurationError(
                    f"Tool names {names!r} need the tool registry (django_ai_chat.tools), "
                    "which failed to import; pass tool objects instead."
                ) from error
            return objects
        objects.extend(await registry.afor_actor(actor, True if tools is True else names))
    return objects
