"""`Tool`: the one interface the loop knows about."""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Sequence
from typing import Any

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError

# The strictest provider rule (OpenAI): letters, digits, `_` and `-`, at most 64 characters.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Tool(abc.ABC):
    """A function the model may call; it always runs as the actor (the chat's user).

    Subclass it for tools that fit neither `ModelTools` nor `@tool`: set the three attributes in
    `__init__`, implement `acall`, and override `has_permission` when not everyone may use it.

    Attributes:
        name: Unique name the model calls the tool by (letters, digits, `_`, `-`; ≤ 64).
        description: What the tool does, written for the model.
        parameters: JSON schema of the arguments (`{"type": "object", ...}`).
        requires_approval: Whether a call waits for the user's approval before it runs (human
            in the loop). The project's `AI_CHAT_TOOL_APPROVAL` setting and the responder's
            `needs_approval` may override it; read it through `needs_approval`.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    requires_approval: bool = False

    def __init__(
        self,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        approval: bool | None = None,
    ) -> None:
        """Set the tool's identity.

        Args:
            name: Unique tool name (letters, digits, `_`, `-`; at most 64 characters).
            description: What the tool does, written for the model.
            parameters: JSON schema of an object: the arguments the model passes.
            approval: Whether calls need the user's approval first; `None` keeps the class's
                `requires_approval`.

        Raises:
            ConfigurationError: The name would be refused by a provider, or the schema is not
                an object schema.
        """
        if not _NAME.match(name):
            raise ConfigurationError(
                f"Tool name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-'."
            )
        if parameters.get("type") != "object":
            raise ConfigurationError(
                f"The parameters of tool {name!r} must be a JSON schema with type 'object'."
            )
        self.name = name
        self.description = description
        self.parameters = parameters
        if approval is not None:
            self.requires_approval = approval

    def has_permission(self, actor: Any) -> bool:
        """Whether `actor` may use this tool at all (rows are scoped separately, per call).

        Args:
            actor: The user the chat belongs to; `None` in no-user mode.

        Returns:
            `True` by default. May query the database: call it from sync code.
        """
        return True

    def needs_approval(self, arguments: dict[str, Any], actor: Any) -> bool:
        """Whether this call waits for the user's approval (`requires_approval` by default).

        Override it to decide per call (e.g. only deletions of more than one row). Called from
        async code: do not query the database here.

        Args:
            arguments: The arguments the model sent.
            actor: The user the chat belongs to; `None` in no-user mode.
        """
        return self.requires_approval

    def describe_arguments(self, arguments: dict[str, Any]) -> list[tuple[str, str]]:
        """The call's arguments as `(label, value)` pairs a person reads (the approval card).

        Labels come from the schema's `title` or `description` of each property, else the name
        made readable; values are text (nested values as compact JSON).
        """
        return describe_arguments(self.parameters, arguments)

    @abc.abstractmethod
    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Run the tool as `actor`.

        Args:
            arguments: The arguments the model sent, decoded from JSON.
            actor: The user the chat belongs to; `None` in no-user mode.

        Returns:
            A JSON-serialisable value, sent back to the model.

        Raises:
            ToolError: The call failed in a way the model can correct (bad arguments, a row that
                does not exist, a permission the actor lacks); the message says how.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def needs_approval(tool: Any, arguments: dict[str, Any], actor: Any) -> bool:
    """Whether this call of `tool` waits for the user's approval.

    `settings.AI_CHAT_TOOL_APPROVAL` (tool name -> bool) wins; else the tool's own
    `needs_approval(arguments, actor)`, else its `requires_approval` attribute (duck-typed
    tools), else no.
    """
    configured = ai_chat_settings.TOOL_APPROVAL
    name = str(getattr(tool, "name", ""))
    if name in configured:
        return bool(configured[name])
    decide = getattr(tool, "needs_approval", None)
    if callable(decide):
        return bool(decide(arguments, actor))
    return bool(getattr(tool, "requires_approval", False))


def describe_arguments(
    parameters: dict[str, Any],
    arguments: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """`arguments` as labelled text values, in the schema's order, then any others.

    Args:
        parameters: The tool's JSON schema.
        arguments: The arguments of one call.
        labels: Labels by argument name, winning over the schema's.
    """
    properties = parameters.get("properties") or {}
    names = [name for name in properties if name in arguments]
    names += [name for name in arguments if name not in properties]
    rows: list[tuple[str, str]] = []
    for name in names:
        schema = properties.get(name) or {}
        label = (labels or {}).get(name) or schema.get("title") or _readable(name)
        rows.append((str(label), _text(arguments[name])))
    return rows


def _readable(name: str) -> str:
    words = name.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def actor_has_perms(actor: Any, perms: Sequence[str]) -> bool:
    """Django permission check with the package's semantics for `actor`.

    `None` is no-user mode (the project has no users, so there is nobody to check); an object
    without `has_perms` (not a user) is denied; users and `AnonymousUser` follow Django
    (inactive users have no permissions, active superusers have all).
    """
    if actor is None:
        return True
    has_perms = getattr(actor, "has_perms", None)
    if not callable(has_perms):
        return False
    return bool(has_perms(perms))
