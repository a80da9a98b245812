"""A fresh `startproject`, the chat generated into it: it checks, migrates, passes its own tests."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import BIN, LINT_CONFIG, GeneratedProject

pytestmark = pytest.mark.e2e


LAYOUT = (
    "__init__.py",
    "apps.py",
    "models.py",
    "actions.py",
    "responder.py",
    "jobs.py",
    "ai_tools.py",
    "views.py",
    "urls.py",
    "admin.py",
    "templatetags/chat_tags.py",
    "templates/chat/chat.html",
    "management/commands/chat_worker.py",
    "tests/__init__.py",
    "migrations/0001_initial.py",
)


def test_the_app_is_generated_and_installed(generated_project: GeneratedProject) -> None:
    app = generated_project.path / generated_project.app_label
    assert [name for name in LAYOUT if not (app / name).is_file()] == []
    settings = (generated_project.path / "mysite" / "settings.py").read_text()
    assert "'chat',\n]" in settings
    assert settings.index("'daphne'") < settings.index("'django.contrib.staticfiles'")
    assert "ASGI_APPLICATION = 'mysite.asgi.application'" in settings
    urls = (generated_project.path / "mysite" / "urls.py").read_text()
    assert "path('chat/', include('chat.urls'))" in urls


def test_django_check_passes(generated_project: GeneratedProject) -> None:
    done = generated_project.manage("check")
    assert "no issues" in done.stdout


def test_the_generated_apps_own_tests_pass(generated_project: GeneratedProject) -> None:
    done = generated_project.manage("test", generated_project.app_label, "--no-input")
    ran = re.search(r"Ran (\d+) tests?", done.stderr)
    assert ran and int(ran.group(1)) > 0, done.stderr


def test_rerunning_with_check_reports_in_sync(generated_project: GeneratedProject) -> None:
    done = generated_project.gen("--check", *generated_project.options)
    assert done.stdout.rstrip().endswith("In sync.")
    assert not re.search(r"^  (create|update|conflict) ", done.stdout, re.M), done.stdout


def test_the_generated_app_is_lint_clean(generated_project: GeneratedProject) -> None:
    generated_project.run(
        BIN / "ruff", "check", "--no-cache", "--config", LINT_CONFIG, generated_project.app_label
    )
