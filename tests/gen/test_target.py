from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import include, path

from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.target import Target, find_root

REPO = Path(__file__).parent.parent.parent


def _login(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


urlpatterns = [
    path("auth/", include(([path("login/", _login, name="login")], "auth"))),
]


def test_facts_of_the_running_project() -> None:
    target = Target.from_django(REPO)
    assert target.settings_file == PurePosixPath("tests/settings.py")
    assert target.urls_file == PurePosixPath("tests/urls.py")
    assert target.asgi_module is None  # tests/ has no asgi.py
    assert "django_ai_chat" in target.installed_apps
    assert target.has_setting("AI_CHAT_MODEL") and not target.has_setting("NO_SUCH_SETTING")
    assert target.database_vendor == "postgresql"
    assert not target.login_url_resolves  # /accounts/login/ is not served by tests.urls


@override_settings(ROOT_URLCONF=__name__, LOGIN_URL="auth:login")
def test_login_url_may_be_a_url_name() -> None:
    target = Target.from_django(REPO)
    assert target.login_url_resolves
    assert target.urls_file == PurePosixPath("tests/gen/test_target.py")


@override_settings(ROOT_URLCONF=__name__, LOGIN_URL="/elsewhere/")
def test_an_unserved_login_path_does_not_resolve() -> None:
    assert not Target.from_django(REPO).login_url_resolves


def test_find_root_walks_up_to_manage_py(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_root(tmp_path / "a" / "b") == tmp_path
    with pytest.raises(GeneratorError, match=r"No manage\.py in"):
        find_root(Path("/"))
