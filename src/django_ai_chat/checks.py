"""System checks: the database (PostgreSQL, pooled in production) and the MCP servers' settings.

The database must carry the queue and the pub/sub; `AI_CHAT_MCP_SERVERS` must be well formed,
with its client installed. All read settings only (no query), so they carry no `database`
tag: Django 6 skips checks with that tag unless `check --database` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import checks


def _default_database() -> Mapping[str, Any]:
    return settings.DATABASES.get("default", {})


def _is_postgresql(database: Mapping[str, Any]) -> bool:
    engine = str(database.get("ENGINE", ""))
    return "postgresql" in engine or "postgis" in engine


@checks.register(checks.Tags.compatibility)
def check_postgresql(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Error unless the default database is PostgreSQL.

    The job queue and the live streaming rely on LISTEN/NOTIFY.
    """
    database = _default_database()
    if _is_postgresql(database):
        return []
    return [
        checks.Error(
            f"django-ai-chat needs PostgreSQL; the default database is {database.get('ENGINE')!r}.",
            hint="Set DATABASES['default'] to PostgreSQL (psycopg 3), e.g. through DATABASE_URL. "
            "The job queue and the live streaming use LISTEN/NOTIFY, which SQLite lacks.",
            id="django_ai_chat.E001",
        )
    ]


@checks.register(deploy=True)
def check_connection_pool(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn (`check --deploy`) when PostgreSQL connections are not pooled.

    Under ASGI `CONN_MAX_AGE` must stay 0, so without `OPTIONS["pool"]` every request, every
    read of an event stream and every answer job opens a new connection: a PostgreSQL server
    process each, which the benchmark measured as most of the database's CPU.
    """
    database = _default_database()
    if not _is_postgresql(database) or database.get("OPTIONS", {}).get("pool"):
        return []
    return [
        checks.Warning(
            "PostgreSQL connections are not pooled: chat requests, event streams and answer "
            "jobs each open a new connection.",
            hint="Set DATABASES['default']['OPTIONS']['pool'] = {'min_size': 2, 'max_size': 20} "
            "(psycopg's pool, Django 5.1+) and keep CONN_MAX_AGE = 0. Pooling elsewhere "
            "(PgBouncer)? Add django_ai_chat.W001 to SILENCED_SYSTEM_CHECKS.",
            id="django_ai_chat.W001",
        )
    ]


@checks.register(checks.Tags.compatibility)
def check_mcp_servers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Error when `AI_CHAT_MCP_SERVERS` is malformed or its client is not installed.

    Otherwise the first answer would find out, in the worker.
    """
    if not getattr(settings, "AI_CHAT_MCP_SERVERS", None):
        return []
    from django_ai_chat.exceptions import ConfigurationError
    from django_ai_chat.tools.mcp import server_configs

    try:
        server_configs()
        import pydantic_ai.mcp  # noqa: F401  (needs the fastmcp client)
    except ConfigurationError as error:
        return [checks.Error(str(error), id="django_ai_chat.E002")]
    except ImportError:
        return [
            checks.Error(
                "AI_CHAT_MCP_SERVERS is set but the MCP client is not installed.",
                hint='pip install "django-ai-chat[mcp]"',
                id="django_ai_chat.E002",
            )
        ]
    return []
