from __future__ import annotations

import glob
import tomllib
from pathlib import Path, PurePosixPath

import django_ai_chat
from django_ai_chat.gen.options import ChatOptions
from django_ai_chat.gen.render import render_snippet, render_tree

P = PurePosixPath
CONTEXT = ChatOptions(app_label="chat", route="chat", provider="openai", user_model=None).context()


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_templates_render_with_brackets_and_keep_django_syntax(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "templates/[[ app_label ]]/page.html-tpl": "{% load static %}{{ x }} [[ app_label ]]\n",
            "static/[[ app_label ]]/app.js": "let a = '[[ app_label ]]';\n",
        },
    )
    assert render_tree(CONTEXT, root) == {
        P("static/chat/app.js"): "let a = '[[ app_label ]]';\n",
        P("templates/chat/page.html"): "{% load static %}{{ x }} chat\n",
    }


def test_switched_off_files_are_omitted_and_empty_inits_follow_their_package(
    tmp_path: Path,
) -> None:
    root = _write(
        tmp_path,
        {
            "admin.py-tpl": "[% if admin %]\nadmin\n[% endif %]\n",
            "tags/__init__.py-tpl": "",
            "tags/[[ app_label ]]_tags.py-tpl": "[% if live %]\ntags\n[% endif %]\n",
            "tests/__init__.py-tpl": "[# package #]\n",
            "tests/test_x.py-tpl": "x = 1\n",
        },
    )
    assert render_tree(CONTEXT, root) == {
        P("tests/__init__.py"): "",
        P("tests/test_x.py"): "x = 1\n",
    }
    live = render_tree({**CONTEXT, "live": True, "admin": True}, root)
    assert set(live) == {
        P("admin.py"),
        P("tags/__init__.py"),
        P("tags/chat_tags.py"),
        P("tests/__init__.py"),
        P("tests/test_x.py"),
    }


def test_the_shipped_app_templates_render_for_every_option_set() -> None:
    for live in (False, True):
        for user in (None, "auth.User"):
            context = {**CONTEXT, "live": live, "live_component": live, "user_model": user}
            files = render_tree(context)
            html = [text for path, text in files.items() if path.suffix == ".html"]
            code = [text for path, text in files.items() if path.suffix in (".py", ".html")]
            assert all("[[" not in text and "[%" not in text for text in code)
            assert not html or any("{%" in text for text in html)


def test_snippets_render_without_surrounding_blank_lines() -> None:
    code = render_snippet("settings/api_key.py-tpl", CONTEXT)
    assert code.endswith('OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")')
    assert not code.startswith("\n")


def test_the_package_data_ships_every_template_file() -> None:
    # setuptools expands package-data with glob.glob (recursive, dotfiles hidden): a file the
    # patterns miss is absent from the wheel, and the generated app would lack it.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["django_ai_chat"]
    package = Path(django_ai_chat.__file__).parent
    shipped = {
        package / name
        for pattern in patterns
        for name in glob.glob(pattern, root_dir=package, recursive=True)
    }
    templates = [
        path
        for directory in ("gen/app_template", "gen/project_template", "gen/snippets")
        for path in (package / directory).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert [str(p.relative_to(package)) for p in templates if p not in shipped] == []
