"""System checks: refuse databases that cannot carry the queue and the pub/sub."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import connections


@checks.register(checks.Tags.database, checks.Tags.compatibility)
def check_postgresql(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Error unless the default database is PostgreSQL.

    The job queue and the live streaming rely on LISTEN/NOTIFY.
    """
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        return []
    return [
        checks.Error(
            f"django-ai-chat needs PostgreSQL; the default database is {vendor!r}.",
            hint="Set DATABASES['default'] to PostgreSQL (psycopg 3), e.g. through DATABASE_URL. "
            "The job queue and the live streaming use LISTEN/NOTIFY, which SQLite lacks.",
            id="django_ai_chat.E001",
        )
    ]
