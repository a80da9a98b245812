"""`make_user`: a user of the project's user model, whatever its username and required fields."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.exceptions import FieldDoesNotExist

__all__ = ["make_user"]


def make_user(name: str, **extra: Any) -> Any:
    """Create a user of `AUTH_USER_MODEL` named after `name`, without a usable password.

    Fills what the model requires (`USERNAME_FIELD`, `REQUIRED_FIELDS`) and its email field:
    email fields get `<name>@example.com`, other text fields `name`; `extra` fields win (pass
    `password="…"` for a usable one). Uses the manager's `create_user` when it has one.

    Raises:
        TypeError: A required field is neither text nor email and `extra` does not give it.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    opts = user_model._meta
    names = [user_model.USERNAME_FIELD, *user_model.REQUIRED_FIELDS]
    email_field = getattr(user_model, "EMAIL_FIELD", None)
    if isinstance(email_field, str) and email_field not in names:
        with contextlib.suppress(FieldDoesNotExist):
            opts.get_field(email_field)
            names.append(email_field)
    fields: dict[str, Any] = {}
    for field_name in names:
        if field_name not in extra:
            fields[field_name] = _user_field_value(opts.get_field(field_name), name)
    fields.update(extra)
    fields.setdefault("password", None)
    manager = user_model._default_manager
    create_user = getattr(manager, "create_user", None)
    if callable(create_user):
        return create_user(**fields)
    password = fields.pop("password")
    user = user_model(**fields)
    user.set_password(password)
    user.save()
    return user


def _user_field_value(field: Any, name: str) -> str:
    from django.db import models

    if isinstance(field, models.EmailField):
        return f"{name}@example.com"
    if isinstance(field, models.CharField | models.TextField):
        max_length = getattr(field, "max_length", None)
        return name[:max_length] if max_length else name
    raise TypeError(
        f"make_user cannot make up a value for the user field {field.name!r} "
        f"({type(field).__name__}): pass it, e.g. make_user({name!r}, {field.name}=...)."
    )
