"""Checks on the arguments the model sends, shared by every kind of tool."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django_ai_chat.exceptions import ToolError


def check_arguments(arguments: Any, valid: Iterable[str]) -> dict[str, Any]:
    """`arguments` if it is an object with no keys outside `valid`.

    Raises:
        ToolError: Not an object, or unknown keys; the message lists the valid ones.
    """
    valid = list(valid)
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        raise ToolError(f"Arguments must be a JSON object, not {arguments!r}.")
    unknown = [key for key in arguments if key not in valid]
    if unknown:
        raise ToolError(
            f"Unknown arguments provided: {', '.join(unknown)}. "
            f"Valid arguments are: {', '.join(valid) or 'none'}."
        )
    return arguments
