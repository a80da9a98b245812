"""The system checks, run as `manage.py check` runs them."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.checks import run_checks


def _ids(*, deploy: bool) -> set[str]:
    return {message.id for message in run_checks(include_deployment_checks=deploy) if message.id}


@pytest.mark.parametrize(
    ("options", "warned"),
    [({}, True), ({"pool": True}, False), ({"pool": {"min_size": 2, "max_size": 20}}, False)],
)
def test_deploy_check_asks_for_a_connection_pool(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], warned: bool
) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "OPTIONS", options)
    assert ("django_ai_chat.W001" in _ids(deploy=True)) is warned
    # Development (`check` without --deploy) is not nagged.
    assert "django_ai_chat.W001" not in _ids(deploy=False)


def test_postgis_is_postgresql_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "OPTIONS", {})
    engine = "django.contrib.gis.db.backends.postgis"
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", engine)
    assert "django_ai_chat.W001" in _ids(deploy=True)


def test_no_pool_warning_for_other_databases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "OPTIONS", {})
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    assert "django_ai_chat.W001" not in _ids(deploy=True)


def test_postgresql_passes_the_database_check() -> None:
    assert "django_ai_chat.E001" not in _ids(deploy=False)


def test_any_other_database_is_refused_by_plain_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # `manage.py check` and runserver run it: no `--database`, no `--deploy` needed.
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    assert "django_ai_chat.E001" in _ids(deploy=False)


def test_malformed_mcp_servers_are_an_error_at_start_up(settings: Any) -> None:
    from django_ai_chat.checks import check_mcp_servers

    assert check_mcp_servers() == []
    settings.AI_CHAT_MCP_SERVERS = {"crm": {"url": "http://127.0.0.1:1/mcp"}}
    assert check_mcp_servers() == []
    settings.AI_CHAT_MCP_SERVERS = {"crm": {"url": "http://x", "command": "x"}}
    [error] = check_mcp_servers()
    assert error.id == "django_ai_chat.E002"
    assert "AI_CHAT_MCP_SERVERS['crm']" in error.msg
