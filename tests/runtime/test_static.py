"""The UI's static files ship with the runtime, and a project can replace any of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import override_settings

import django_ai_chat

PACKAGE = Path(django_ai_chat.__file__).parent
SHIPPED = (
    "django_ai_chat/chat.css",
    "django_ai_chat/chat.js",
    "django_ai_chat/vendor/highlight.min.js",
    "django_ai_chat/vendor/marked.umd.js",
    "django_ai_chat/vendor/purify.min.js",
)
TEMPLATES = PACKAGE / "gen" / "app_template" / "templates"


@pytest.mark.parametrize("path", SHIPPED)
def test_the_runtime_app_serves_the_ui_files(path: str) -> None:
    found = finders.find(path)

    assert found == str(PACKAGE / "static" / path)


def test_every_file_the_templates_link_is_shipped() -> None:
    linked = {
        match
        for template in TEMPLATES.rglob("*-tpl")
        for match in re.findall(r"{% static '([^']+)' %}", template.read_text())
    }

    assert linked == set(SHIPPED)


def test_a_directory_in_staticfiles_dirs_replaces_a_shipped_file(tmp_path: Path) -> None:
    # What the README tells a project that wants its own copy without editing templates.
    mine = tmp_path / "django_ai_chat" / "chat.js"
    mine.parent.mkdir()
    mine.write_text("// mine\n")

    with override_settings(STATICFILES_DIRS=[tmp_path]):
        assert finders.find("django_ai_chat/chat.js") == str(mine)


def test_the_stylesheet_has_the_classes_and_highlighting_the_ui_needs() -> None:
    css = (PACKAGE / "static" / "django_ai_chat" / "chat.css").read_text()

    # daisyUI components, a utility, the scoped reset and Pygments' colours (frontend/build).
    for rule in (".btn{", ".drawer{", ".prose", "[data-chat-root]", ".highlight .k{"):
        assert rule in css, f"{rule!r} missing from chat.css: rebuild it with frontend/build"
