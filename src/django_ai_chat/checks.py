"""System checks: the database must carry the queue and the pub/sub, and pool in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
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


@checks.register(checks.Tags.database, deploy=True)
def check_connection_pool(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn (`check --deploy`) when PostgreSQL connections are not pooled.

    Under ASGI `CONN_MAX_AGE` must stay 0, so without `OPTIONS["pool"]` every request, every
    read of an event stream and every answer job opens a new connection: a PostgreSQL server
    process each, which the benchmark measured as most of the database's CPU.
    """
    database = settings.DATABASES.get("default", {})
    if "postgresql" not in str(database.get("ENGINE", "")):
        return []
    if database.get("OPTIONS", {}).get("pool"):
        return []
    return [
        checks.Warning(
            "PostgreSQL connections are not pooled: chat requests, event streams and answer "
            "jobs each open a new connection.",
            hint="Set DATABASES['default']['OPTIONS']['pool'] = {'min_size': 2, 'max_size': 20} "
            "(psycopg's pool, Django 5.1+) and keep CONN_MAX_AGE = 0.",
            id="django_ai_chat.W001",
        )
    ]
