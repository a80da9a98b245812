"""`Tool`: the one interface the loop knows about."""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import Any

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
    """

    name: str
    description: str
    parameters: dict[str, Any]

    def __init__(self, *, name: str, description: str, parameters: dict[str, Any]) -> None:
        """Set the tool's identity.

        Args:
            name: Unique tool name (letters, digits, `_`, `-`; at most 64 characters).
            description: What the tool does, written for the model.
            parameters: JSON schema of an object: the arguments the model passes.

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

    def has_permission(self, actor: Any) -> bool:
        """Whether `actor` may use this tool at all (rows are scoped separately, per call).

        Args:
            actor: The user the chat belongs to; `None` in no-user mode.

        Returns:
            `True` by default. May query the database: call it from sync code.
        """
        return True

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
