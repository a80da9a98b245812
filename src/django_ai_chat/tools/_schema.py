"""JSON schemas for Django model fields, as tool parameters."""

from __future__ import annotations

from typing import Any

from django.db import models

from django_ai_chat.exceptions import ConfigurationError

# Subclasses come before their bases (DateTimeField is a DateField, EmailField a CharField, ...).
_STRING_FORMATS: tuple[tuple[type[models.Field[Any, Any]], str | None], ...] = (
    (models.DateTimeField, "date-time"),
    (models.DateField, "date"),
    (models.TimeField, "time"),
    (models.DurationField, "duration"),
    (models.UUIDField, "uuid"),
    (models.EmailField, "email"),
    (models.URLField, "uri"),
    (models.GenericIPAddressField, None),
    (models.CharField, None),
    (models.TextField, None),
    (models.FileField, None),
)
_POSITIVE = (
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.PositiveBigIntegerField,
)


def field_schema(field: models.Field[Any, Any]) -> dict[str, Any]:
    """The JSON schema of the values a field holds (nullable fields also accept `null`).

    Args:
        field: A concrete model field (foreign keys take the type of the related primary key).

    Returns:
        The schema, with the field's `help_text` as its description.

    Raises:
        ConfigurationError: The field type has no JSON form (binary, many-to-many, ...).
    """
    schema = _value_schema(field)
    if field.choices:
        schema["enum"] = [value for value, _label in field.flatchoices]
    description = str(field.help_text) if field.help_text else ""
    if isinstance(field, models.ForeignKey):
        related = field.related_model._meta.verbose_name
        description = description or f"Primary key of a {related}."
    if field.null:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if description:
        schema["description"] = description
    return schema


def is_text(field: models.Field[Any, Any]) -> bool:
    """Whether the text operators (`contains`, `icontains`, `startswith`) apply to `field`."""
    return isinstance(field, models.CharField | models.TextField) and not field.choices


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An object schema that refuses unknown properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _value_schema(field: models.Field[Any, Any]) -> dict[str, Any]:
    if isinstance(field, models.ForeignKey):
        return _value_schema(field.target_field)
    if isinstance(field, models.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, models.IntegerField):  # includes AutoField and the positive fields
        schema: dict[str, Any] = {"type": "integer"}
        if isinstance(field, _POSITIVE):
            schema["minimum"] = 0
        return schema
    if isinstance(field, models.FloatField):
        return {"type": "number"}
    if isinstance(field, models.DecimalField):
        # A JSON number would lose precision; the database value comes back as a string too.
        return {"type": "string", "format": "decimal"}
    if isinstance(field, models.JSONField):
        return {}
    for field_class, format_ in _STRING_FORMATS:
        if isinstance(field, field_class):
            schema = {"type": "string"}
            if format_:
                schema["format"] = format_
            if isinstance(field, models.CharField) and field.max_length:
                schema["maxLength"] = field.max_length
            return schema
    raise ConfigurationError(
        f"Field {field.model.__name__}.{field.name} ({type(field).__name__}) cannot be exposed "
        "to a model: leave it out of fields=[...]."
    )
