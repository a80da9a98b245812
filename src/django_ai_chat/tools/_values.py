"""Conversions between JSON values from the model and Python values of model fields."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from django_ai_chat.exceptions import ToolError


def to_python(field: models.Field[Any, Any], value: Any) -> Any:
    """`value` (JSON) as the Python value `field` stores.

    Raises:
        ToolError: The value does not fit the field; the message names it and says why.
    """
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    try:
        python = target.to_python(value)
    except ValidationError as error:
        raise ToolError(
            f"Invalid value {value!r} for {field.name!r}: {' '.join(error.messages)}"
        ) from None
    if isinstance(python, datetime.datetime) and timezone.is_naive(python):
        # Naive timestamps from the model are read in the project's time zone.
        python = timezone.make_aware(python)
    return python


def to_json(instance: models.Model, fields: Sequence[models.Field[Any, Any]]) -> dict[str, Any]:
    """The exposed fields of `instance` as JSON-ready values (foreign keys as their keys)."""
    data: dict[str, Any] = {}
    for field in fields:
        value = field.value_from_object(instance)
        if isinstance(value, FieldFile):
            value = value.name or None
        data[field.name] = value
    # DjangoJSONEncoder already knows dates (ISO 8601), UUIDs, decimals and durations.
    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result


def validation_message(error: ValidationError) -> str:
    """A `ValidationError` as "field: message" lines."""
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"- {'(all fields)' if name == '__all__' else name}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        )
    return "\n".join(f"- {message}" for message in error.messages)
