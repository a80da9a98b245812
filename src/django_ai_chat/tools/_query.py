"""The read tool's query language: filter conditions, OR groups and sort, as Django lookups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.db.models import Q

from django_ai_chat.exceptions import ToolError
from django_ai_chat.tools._schema import is_text
from django_ai_chat.tools._values import to_python

OPERATORS = {
    "eq": "exact",
    "ne": "exact",  # negated
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "in": "in",
    "contains": "contains",
    "icontains": "icontains",
    "startswith": "startswith",
    "isnull": "isnull",
}
TEXT_OPERATORS = ("contains", "icontains", "startswith")
RESULT_TYPES = ("run_query", "count", "exists")

Fields = Mapping[str, "models.Field[Any, Any]"]


def read_schema(fields: Fields, *, default_limit: int, max_limit: int) -> dict[str, Any]:
    """JSON schema of the read tool's arguments, for these exposed fields."""
    names = list(fields)
    condition = {
        "type": "object",
        "properties": {
            "field": {"type": "string", "enum": names},
            "operator": {"type": "string", "enum": list(OPERATORS), "default": "eq"},
            "value": {
                "description": "A string, number, boolean or null; a list for 'in'; "
                "true/false for 'isnull'. Dates and times in ISO 8601.",
                "anyOf": [
                    {"type": "string"},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                    {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
                ],
            },
        },
        "required": ["field", "operator", "value"],
        "additionalProperties": False,
    }
    or_group = {
        "type": "object",
        "properties": {"or": {"type": "array", "items": condition, "minItems": 1}},
        "required": ["or"],
        "additionalProperties": False,
    }
    text_fields = ", ".join(name for name, field in fields.items() if is_text(field)) or "none"
    return {
        "type": "object",
        "properties": {
            "filter": {
                "type": "array",
                "description": "Conditions, all of which must hold. "
                "Use {'or': [conditions]} when any one of several may hold. "
                f"Text operators (contains, icontains, startswith) work on: {text_fields}.",
                "items": {"anyOf": [condition, or_group]},
            },
            "sort": {
                "type": "array",
                "description": "Sort keys, most significant first.",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string", "enum": names},
                        "direction": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                    },
                    "required": ["field", "direction"],
                    "additionalProperties": False,
                },
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_limit,
                "default": default_limit,
                "description": "Most rows to return.",
            },
            "offset": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "Rows to skip first.",
            },
            "result_type": {
                "type": "string",
                "enum": list(RESULT_TYPES),
                "default": "run_query",
                "description": "run_query: the rows; count: how many rows match; "
                "exists: whether any row matches.",
            },
        },
        "additionalProperties": False,
    }


def filter_q(conditions: Any, fields: Fields) -> Q:
    """The `filter` argument as a `Q`: entries ANDed, `{"or": [...]}` groups ORed.

    Raises:
        ToolError: A malformed entry, unknown field or operator, or a value of the wrong type.
    """
    if conditions is None:
        return Q()
    if not isinstance(conditions, list):
        raise ToolError("'filter' must be a list of conditions {field, operator, value}.")
    q = Q()
    for index, entry in enumerate(conditions):
        where = f"filter[{index}]"
        if isinstance(entry, dict) and "or" in entry:
            q &= _or_group(entry, fields, where)
        else:
            q &= _condition(entry, fields, where)
    return q


def ordering(sort: Any, fields: Fields, pk_name: str) -> list[str]:
    """The `sort` argument as `order_by()` arguments, ending with the primary key (stable pages).

    Raises:
        ToolError: A malformed entry, unknown field or direction.
    """
    if sort is None:
        sort = []
    if not isinstance(sort, list):
        raise ToolError("'sort' must be a list of {field, direction} objects.")
    order: list[str] = []
    for index, entry in enumerate(sort):
        where = f"sort[{index}]"
        _check_keys(entry, ("field", "direction"), where)
        name = _field(entry.get("field"), fields, where).name
        direction = entry.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise ToolError(f"{where}: direction must be 'asc' or 'desc', not {direction!r}.")
        order.append(f"-{name}" if direction == "desc" else name)
    if not any(key.lstrip("-") in (pk_name, "pk") for key in order):
        order.append(pk_name)
    return order


def _or_group(entry: dict[str, Any], fields: Fields, where: str) -> Q:
    _check_keys(entry, ("or",), where)
    alternatives = entry["or"]
    if not isinstance(alternatives, list) or not alternatives:
        raise ToolError(f"{where}: 'or' must be a non-empty list of conditions.")
    q = Q()
    for index, condition in enumerate(alternatives):
        q |= _condition(condition, fields, f"{where}.or[{index}]")
    return q


def _condition(entry: Any, fields: Fields, where: str) -> Q:
    _check_keys(entry, ("field", "operator", "value"), where)
    field = _field(entry.get("field"), fields, where)
    operator = entry.get("operator", "eq")
    if operator not in OPERATORS:
        raise ToolError(
            f"{where}: unknown operator {operator!r}. Valid operators are: {', '.join(OPERATORS)}."
        )
    value = entry.get("value")
    if operator in ("eq", "ne") and value is None:
        return Q(**{f"{field.name}__isnull": operator == "eq"})
    if operator == "isnull":
        if not isinstance(value, bool):
            raise ToolError(f"{where}: 'isnull' takes true or false, not {value!r}.")
        return Q(**{f"{field.name}__isnull": value})
    if operator in TEXT_OPERATORS:
        if not is_text(field):
            texts = ", ".join(name for name, f in fields.items() if is_text(f)) or "none"
            raise ToolError(
                f"{where}: {operator!r} works on text fields only ({texts}); "
                f"use eq, ne, gt, gte, lt, lte or in for {field.name!r}."
            )
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ToolError(f"{where}: {operator!r} takes a string, not {value!r}.")
        return Q(**{f"{field.name}__{OPERATORS[operator]}": str(value)})
    if operator == "in":
        if not isinstance(value, list):
            raise ToolError(f"{where}: 'in' takes a list of values, not {value!r}.")
        return Q(**{f"{field.name}__in": [to_python(field, item) for item in value]})
    if isinstance(value, list | dict):
        raise ToolError(f"{where}: {operator!r} takes a single value, not {value!r}.")
    q = Q(**{f"{field.name}__{OPERATORS[operator]}": to_python(field, value)})
    return ~q if operator == "ne" else q


def _field(name: Any, fields: Fields, where: str) -> models.Field[Any, Any]:
    if name not in fields:
        raise ToolError(f"{where}: unknown field {name!r}. Valid fields are: {', '.join(fields)}.")
    return fields[name]


def _check_keys(entry: Any, valid: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise ToolError(f"{where} must be an object with keys {', '.join(valid)}; got {entry!r}.")
    unknown = [key for key in entry if key not in valid]
    if unknown:
        raise ToolError(
            f"{where}: unknown keys {', '.join(map(repr, unknown))}. "
            f"Valid keys are: {', '.join(valid)}."
        )
