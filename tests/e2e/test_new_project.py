"""`django-ai-chat new`: a project that runs, whose own tests pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.newproject import cli, fresh_database, manage, project_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("new")
    result = cli("new", "my_app", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "python manage.py chat_dev" in result.stdout
    return root / "my_app"


def test_new_makes_a_project_with_accounts_and_the_chat(project: Path) -> None:
    settings = (project / "my_app" / "settings.py").read_text()

    assert 'AUTH_USER_MODEL = "accounts.User"' in settings
    assert 'LOGIN_REDIRECT_URL = "/chat/"' in settings
    assert "dj_database_url.config(" in settings
    assert '"chat",' in settings  # gen added the chat app
    assert (project / "accounts" / "migrations" / "0001_initial.py").is_file()
    assert (project / "chat" / "views.py").is_file()
    assert (project / "chat" / "tests" / "test_admin.py").is_file()  # the project has the admin
    assert 'path("chat/", include("chat.urls"))' in (project / "my_app" / "urls.py").read_text()


def test_the_new_projects_own_tests_pass(project: Path) -> None:
    with fresh_database() as url:
        result = manage(project, "test", "--noinput", env=project_env(project, DATABASE_URL=url))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ran = re.search(r"Ran (\d+) tests?", output)
    assert ran, output
    # The accounts tests alone are 11; the generated chat app brings its own.
    assert int(ran[1]) >= 11, output


def test_the_new_project_migrates_and_passes_its_checks(project: Path) -> None:
    with fresh_database() as url:
        env = project_env(project, DATABASE_URL=url)
        migrate = manage(project, "migrate", "--noinput", env=env)
        check = manage(project, "check", "--fail-level", "WARNING", env=env)

    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert check.returncode == 0, check.stdout + check.stderr


def test_options_pass_through_to_the_generator(tmp_path: Path) -> None:
    result = cli(
        "new",
        "support_site",
        "--domain",
        "support_chat",
        "--route",
        "/support/chat",
        "--provider",
        "anthropic",
        "--live-component",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    project = tmp_path / "support_site"
    settings = (project / "support_site" / "settings.py").read_text()
    assert '"support_chat",' in settings
    assert 'LOGIN_REDIRECT_URL = "/support/chat/"' in settings
    assert "ANTHROPIC_API_KEY" in settings
    # The stylesheet and scripts ship with the runtime, not copied into the app.
    assert not (project / "support_chat" / "static").exists()
    base = (project / "accounts" / "templates" / "accounts" / "base.html").read_text()
    assert "{% static 'django_ai_chat/chat.css' %}" in base
    urls = (project / "support_site" / "urls.py").read_text()
    assert 'path("support/chat/", include("support_chat.urls"))' in urls


def test_new_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")

    result = cli("new", "my_app", "taken", cwd=tmp_path)

    assert result.returncode == 2
    assert "not an empty directory" in result.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "taken" / "manage.py").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["my-app"], "not a valid project name"),
        (["json"], "conflicts with the name of an existing Python module"),
        (["my_app", "--domain", "Chat"], "not a valid app label"),
        (["my_app", "--route", "/"], "is not a plain URL path"),
    ],
)
def test_new_explains_invalid_names(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("new", *args, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert not any(tmp_path.iterdir())
