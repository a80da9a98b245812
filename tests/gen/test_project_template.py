"""The project template of `django-ai-chat new`, rendered for every provider and option."""

from __future__ import annotations

import ast
from pathlib import PurePosixPath

import pytest

from django_ai_chat.cli.new import render_project
from django_ai_chat.gen.options import PROVIDERS, default_model


def _context(
    provider: str, *, route: str = "chat", live_component: bool = False
) -> dict[str, object]:
    api_key_env, extra = PROVIDERS[provider]
    return {
        "project_name": "my_app",
        "secret_key": "s3cret",
        "app_label": "support_chat",
        "route": route,
        "provider": provider,
        "model": default_model(provider),
        "api_key_env": api_key_env,
        "extra": extra,
        "live_component": live_component,
        "version": "0.1.0",
    }


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_python_file_parses_and_no_template_syntax_is_left(provider: str) -> None:
    files = render_project(_context(provider, live_component=True))

    for path, content in files.items():
        assert "[[" not in content and "[%" not in content, path
        if path.suffix == ".py":
            ast.parse(content, filename=str(path))
    assert PurePosixPath("my_app/settings.py") in files
    assert PurePosixPath("manage.py") in files


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_settings_read_the_environment(provider: str) -> None:
    settings = render_project(_context(provider))[PurePosixPath("my_app/settings.py")]

    assert "dj_database_url.config(" in settings
    assert f'os.environ.get("AI_CHAT_MODEL", "{default_model(provider)}")' in settings
    assert 'SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-s3cret")' in settings
    api_key_env = PROVIDERS[provider][0]
    if api_key_env:
        assert api_key_env in settings


def test_route_and_chat_app_reach_settings_urls_and_pages() -> None:
    files = render_project(_context("anthropic", route="support/chat"))

    assert 'LOGIN_REDIRECT_URL = "/support/chat/"' in files[PurePosixPath("my_app/settings.py")]
    assert 'url="/support/chat/"' in files[PurePosixPath("my_app/urls.py")]
    base = files[PurePosixPath("accounts/templates/accounts/base.html")]
    assert "{% static 'django_ai_chat/chat.css' %}" in base
    tests = files[PurePosixPath("accounts/tests/test_accounts.py")]
    assert 'CHAT_URL = "/support/chat/"' in tests
    assert files[PurePosixPath("requirements.txt")].strip() == "django-ai-chat[anthropic]>=0.1.0"


def test_django_templates_pass_through_untouched() -> None:
    files = render_project(_context("openai"))

    login = files[PurePosixPath("accounts/templates/accounts/login.html")]
    assert '{% extends "accounts/base.html" %}' in login
    assert "{% url 'accounts:login' %}" in login
