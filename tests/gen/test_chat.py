"""`gen_chat` on a project in a temporary directory, with the Django facts given by hand."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from django_ai_chat.gen.apply import Mode, apply
from django_ai_chat.gen.chat import effective_problems, gen_chat, settings_chain
from django_ai_chat.gen.manifest import MANIFEST_NAME, digest
from django_ai_chat.gen.options import ChatOptions, add_arguments
from django_ai_chat.gen.project import Project
from django_ai_chat.gen.render import render_tree
from django_ai_chat.gen.target import Target

CASES = Path(__file__).parent.parent / "golden" / "cases"
STOCK_APPS = (
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
)
P = PurePosixPath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(CASES / "startproject" / "input", tmp_path, dirs_exist_ok=True)
    return tmp_path


def target(root: Path, **changes: object) -> Target:
    stock = Target(
        root=root,
        settings_file=P("mysite/settings.py"),
        urls_file=P("mysite/urls.py"),
        asgi_module="mysite.asgi",
        installed_apps=STOCK_APPS,
        middleware=(),
        defined_settings=frozenset({"INSTALLED_APPS", "MIDDLEWARE"}),
        login_url="/accounts/login/",
        login_url_resolves=True,
    )
    return replace(stock, **changes)  # type: ignore[arg-type]


def options(*argv: str) -> ChatOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return ChatOptions.from_namespace(parser.parse_args(argv), root=Path("/nonexistent"))


def test_a_stock_project_gets_the_app_settings_and_route(root: Path) -> None:
    opts = options("--live")
    project = gen_chat(Project(root), opts, target(root))
    rendered = render_tree(opts.context())
    assert {p for p in project.files if p.parts[0] == "chat"} == {
        P("chat") / p for p in [*rendered, P(MANIFEST_NAME)]
    }
    settings = project.files[P("mysite/settings.py")]
    assert settings.status == "update"
    for added in ("'daphne',\n    'django.contrib.admin'", "'django_htmx',", "'chat',\n]"):
        assert added in settings.after
    assert "'django_htmx.middleware.HtmxMiddleware',\n]" in settings.after
    assert "OPENAI_API_KEY = os.environ.get('OPENAI_API_KEY', '')" in settings.after
    assert "ASGI_APPLICATION = 'mysite.asgi.application'" in settings.after
    if P("urls.py") in rendered:
        assert "path('chat/', include('chat.urls'))" in project.files[P("mysite/urls.py")].after
    has_models = P("models.py") in rendered
    assert [t.args for t in project.tasks] == (
        [("makemigrations", "chat", "--no-header", "--skip-checks")] if has_models else []
    )
    assert any(n.startswith("Add to your project's dependencies") for n in project.notices)
    assert not project.issues and not project.warnings


def test_without_ui_there_is_no_asgi_setup(root: Path) -> None:
    project = gen_chat(Project(root), options(), target(root))
    settings = project.files[P("mysite/settings.py")].after
    assert "daphne" not in settings and "django_htmx" not in settings
    assert "ASGI_APPLICATION" not in settings
    assert "'django_ai_chat',\n    'chat',\n]" in settings


def test_without_ui_only_the_backend_is_written(root: Path) -> None:
    written = {
        p
        for p, c in gen_chat(Project(root), options(), target(root)).files.items()
        if c.writes and p.parts[0] == "chat"
    }
    assert {P("chat/models.py"), P("chat/actions.py"), P("chat/jobs.py")} <= written
    assert not [p for p in written if p.parts[1] in ("static", "templates", "templatetags")]
    assert P("chat/views.py") not in written and P("chat/urls.py") not in written


def test_rerun_after_writing_changes_nothing(root: Path) -> None:
    opts = options("--live", "--live-component", "--provider=gemini")
    apply(gen_chat(Project(root), opts, target(root)), Mode(yes=True), out=_Null())
    (root / "chat" / "migrations").mkdir(exist_ok=True)
    (root / "chat" / "migrations" / "0001_initial.py").write_text("")
    # What Django reports once the settings above are loaded.
    after = target(
        root,
        installed_apps=(
            "daphne",
            *STOCK_APPS,
            "django.contrib.postgres",
            "procrastinate.contrib.django",
            "django_htmx",
            "django_ai_chat",
            "chat",
        ),
        middleware=("django_htmx.middleware.HtmxMiddleware",),
        defined_settings=frozenset({"GOOGLE_API_KEY", "ASGI_APPLICATION"}),
        included_urlconfs=frozenset({"chat.urls"}),
    )
    again = gen_chat(Project(root), opts, after)
    assert {c.status for c in again.files.values()} == {"identical"}
    assert again.tasks == [] and again.warnings == []


def test_an_upgrade_makes_the_next_migration_of_the_models(root: Path) -> None:
    opts = options("--live")
    apply(gen_chat(Project(root), opts, target(root)), Mode(yes=True), out=_Null())
    (root / "chat" / "migrations").mkdir(exist_ok=True)
    (root / "chat" / "migrations" / "0001_initial.py").write_text("")
    upgrade = options("--live", "--upgrade")
    migrate = [("makemigrations", "chat", "--no-header", "--skip-checks")]
    # The runtime's abstract models may have gained fields: makemigrations says if not.
    assert [t.args for t in gen_chat(Project(root), upgrade, target(root)).tasks] == migrate

    # An older version's models.py, unedited: the upgrade rewrites it, then migrates it.
    models = root / "chat" / "models.py"
    manifest = root / "chat" / MANIFEST_NAME
    old = models.read_text().replace("class Feedback(", "class Unused(")
    models.write_text(old)
    manifest.write_text(manifest.read_text().replace("class Feedback(", "class Unused("))
    record = json.loads(manifest.read_text())
    record["files"]["models.py"]["sha256"] = digest(old)
    manifest.write_text(json.dumps(record))

    again = gen_chat(Project(root), upgrade, target(root))
    assert again.files[P("chat/models.py")].status == "update"
    assert [t.args for t in again.tasks] == migrate
    # A re-run without --upgrade only reports the models as out of date; --check only checks.
    assert gen_chat(Project(root), opts, target(root)).tasks == []
    checking = options("--live", "--upgrade", "--check")
    assert gen_chat(Project(root), checking, target(root)).tasks == []


def test_settings_defined_elsewhere_are_not_added_again(root: Path) -> None:
    (root / "mysite" / "settings.py").write_text("from .base import *  # noqa\n")
    installed = (
        *STOCK_APPS,
        "django.contrib.postgres",
        "procrastinate.contrib.django.apps.ProcrastinateConfig",
        "django_ai_chat",
        "chat",
    )
    facts = target(root, installed_apps=installed, defined_settings=frozenset({"OPENAI_API_KEY"}))
    project = gen_chat(Project(root), options(), facts)
    assert P("mysite/settings.py") not in project.files
    assert not [
        n for n in project.notices if n.startswith(("Add to INSTALLED_APPS", "Add to mysite"))
    ]


def test_settings_it_cannot_edit_are_a_refusal_that_writes_nothing(root: Path) -> None:
    (root / "mysite" / "settings.py").write_text(
        "from .base import *  # noqa\nINSTALLED_APPS = BASE_APPS + plugins()\n"
    )
    project = gen_chat(Project(root), options("--live"), target(root))
    assert project.files == {} and project.tasks == [] and project.notices == []
    [issue] = project.issues
    assert issue.startswith("Cannot add chat to INSTALLED_APPS in mysite/settings.py, and")
    assert (
        '    "daphne",\n    ...\n    "django.contrib.postgres",\n'
        '    "procrastinate.contrib.django",' in issue
    )
    assert '    "chat",\n' in issue
    assert '    "django_htmx.middleware.HtmxMiddleware",' in issue
    assert "    import os\n\n    # django-ai-chat: the openai API key" in issue
    assert '    ASGI_APPLICATION = "mysite.asgi.application"' in issue


def test_an_installed_app_with_unrecognised_urls_gets_a_notice(root: Path) -> None:
    (root / "mysite" / "urls.py").write_text("urlpatterns = build()\n")
    project = gen_chat(Project(root), options("--live"), target(root))
    assert not project.issues
    assert project.files[P("mysite/settings.py")].status == "update"
    assert project.files[P("mysite/urls.py")].status == "skip"
    assert '    path("chat/", include("chat.urls")),' in "\n".join(project.notices)


@pytest.mark.parametrize(
    "where", ["pyproject.toml", "requirements.in", "requirements.txt", "requirements/base.txt"]
)
def test_dependencies_go_to_the_projects_list(root: Path, where: str) -> None:
    path = root / where
    path.parent.mkdir(exist_ok=True)
    path.write_text("[project]\ndependencies = []\n" if where == "pyproject.toml" else "Django\n")
    project = gen_chat(Project(root), options("--provider=anthropic", "--live"), target(root))
    assert "django-ai-chat[anthropic]>=0.1.0" in project.files[P(where)].after
    assert "daphne>=4.1" in project.files[P(where)].after
    assert not any("dependencies" in n for n in project.notices)


def test_notices_for_the_database(root: Path) -> None:
    facts = target(root, database_vendor="sqlite")
    notices = "\n".join(gen_chat(Project(root), options("--live"), facts).notices)
    assert "the default database is 'sqlite'" in notices
    postgres = "\n".join(gen_chat(Project(root), options("--live"), target(root)).notices)
    assert "sqlite" not in postgres


def test_without_a_login_page_django_auth_urls_and_a_login_template_are_added(root: Path) -> None:
    facts = target(root, login_url_resolves=False)
    project = gen_chat(Project(root), options("--live"), facts)
    urls = project.files[P("mysite/urls.py")].after
    assert "path('accounts/', include('django.contrib.auth.urls'))" in urls
    assert urls.index("'chat.urls'") < urls.index("'django.contrib.auth.urls'")
    login = project.files[P("chat/templates/registration/login.html")]
    assert login.status == "create"
    assert '{% include "chat/_assets.html" %}' in login.after and "{% csrf_token %}" in login.after
    assert not [n for n in project.notices if "LOGIN_URL" in n]


def test_a_login_view_without_its_template_gets_the_template(root: Path) -> None:
    facts = target(root, login_template_missing="registration/login.html")
    project = gen_chat(Project(root), options("--live"), facts)
    assert project.files[P("chat/templates/registration/login.html")].status == "create"
    assert "django.contrib.auth.urls" not in project.files[P("mysite/urls.py")].after


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"login_url": "/signin/", "login_path": "/signin/"},
            'include("django.contrib.auth.urls")',
        ),
        ({"login_caught_all": True}, "a catch-all route, such as Wagtail's page router"),
        (
            {"installed_apps": (*STOCK_APPS, "allauth", "allauth.account")},
            'include("allauth.urls")',
        ),
    ],
)
def test_a_login_page_it_cannot_add_is_a_notice(
    root: Path, changes: dict[str, object], expected: str
) -> None:
    if changes.get("login_caught_all"):
        (root / "mysite" / "urls.py").write_text("urlpatterns = wagtail()\n")
    facts = target(root, login_url_resolves=False, **changes)
    project = gen_chat(Project(root), options("--live"), facts)
    assert P("chat/templates/registration/login.html") not in project.files
    notices = "\n".join(project.notices)
    assert "does not resolve to a login page" in notices
    assert expected in notices


def test_a_route_another_view_serves_is_refused(root: Path) -> None:
    facts = target(root, view_of={"/chat/": "forum.views.ChatRoom"}.get)
    project = gen_chat(Project(root), options("--live"), facts)
    assert project.issues == [
        "--route /chat/ is taken: /chat/ is served by forum.views.ChatRoom. "
        "Mount the chat elsewhere, e.g. --route /assistant."
    ]
    assert project.files == {}
    ours = target(root, view_of={"/chat/": "chat.views.ChatView"}.get)
    assert not gen_chat(Project(root), options("--live"), ours).issues


def _working(root: Path, **changes: object) -> Target:
    """What Django reports for a project where the chat works."""
    facts = target(
        root,
        installed_apps=(
            "daphne",
            *STOCK_APPS,
            "django.contrib.postgres",
            "procrastinate.contrib.django",
            "django_htmx",
            "django_ai_chat",
            "chat",
        ),
        middleware=("django_htmx.middleware.HtmxMiddleware",),
        defined_settings=frozenset({"OPENAI_API_KEY", "ASGI_APPLICATION"}),
        included_urlconfs=frozenset({"chat.urls"}),
        asgi_application="mysite.asgi.application",
        view_of={"/chat/": "chat.views.ChatView"}.get,
        runserver_apps=("daphne", "django.contrib.staticfiles"),
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def test_check_judges_the_running_project() -> None:
    opts = options("--live", "--check")
    root = Path("/nonexistent")
    assert effective_problems(opts, _working(root), has_urls=True) == []
    broken = _working(
        root,
        installed_apps=("django.contrib.staticfiles", "daphne", "django_ai_chat"),
        middleware=(),
        asgi_application="mysite.asgi.application",
        asgi_error="ModuleNotFoundError: No module named 'mysite.asgi'",
        view_of={"/chat/": "wiki.views.page"}.get,
        runserver_apps=("django.contrib.staticfiles", "daphne"),
        login_url_resolves=False,
    )
    assert effective_problems(opts, broken, has_urls=True) == [
        "INSTALLED_APPS of 'mysite/settings.py' lacks 'django.contrib.postgres', "
        "'procrastinate.contrib.django', 'django_htmx', 'chat'.",
        "'django.contrib.staticfiles' comes before 'daphne' in INSTALLED_APPS, so its runserver "
        "(no ASGI, no live streams) wins: put 'daphne' first.",
        "MIDDLEWARE lacks 'django_htmx.middleware.HtmxMiddleware'.",
        "ASGI_APPLICATION 'mysite.asgi.application' does not import: ModuleNotFoundError: "
        "No module named 'mysite.asgi'.",
        "/chat/ is served by wiki.views.page, not by the chat: choose another --route.",
        "LOGIN_URL (/accounts/login/) does not resolve to a login page: signed-out visitors of "
        "the chat get a 404.",
    ]
    unserved = _working(root, view_of=lambda path: None, asgi_application=None)
    assert effective_problems(opts, unserved, has_urls=True) == [
        "ASGI_APPLICATION is not set (the live streams need ASGI).",
        '/chat/ is not served: add path("chat/", include("chat.urls")) to mysite/urls.py.',
    ]


def test_check_after_gen_without_the_notices_applied_is_not_in_sync(root: Path) -> None:
    (root / "mysite" / "urls.py").write_text("urlpatterns = build()\n")
    apply(gen_chat(Project(root), options("--live"), target(root)), Mode(yes=True), out=_Null())
    (root / "chat" / "migrations").mkdir(exist_ok=True)
    (root / "chat" / "migrations" / "0001_initial.py").write_text("")
    opts = options("--live", "--check")
    project = gen_chat(Project(root), opts, _working(root, view_of=lambda path: None))
    out = _Lines()
    assert apply(project, Mode(check=True), out=out) == 1
    assert "Still to do (the running project, as Django loads it):" in out.text
    assert '  - /chat/ is not served: add path("chat/", include("chat.urls"))' in out.text
    assert out.text.rstrip().endswith("Not in sync: 1 thing(s) still to do.")


class _Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def isatty(self) -> bool:
        return False


def test_no_user_mode_warns_that_every_visitor_has_every_conversation(root: Path) -> None:
    no_user = replace(options("--live"), user_model=None)
    notices = "\n".join(gen_chat(Project(root), no_user, target(root)).notices)
    assert "everyone who can reach /chat/ reads, continues and deletes every" in notices
    assert "tools run without permission checks" in notices
    with_users = "\n".join(gen_chat(Project(root), options("--live"), target(root)).notices)
    assert "No user model" not in with_users


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def isatty(self) -> bool:
        return False


def test_a_file_where_the_app_goes_is_an_issue(root: Path) -> None:
    (root / "chat").write_text("not a package\n")
    project = gen_chat(Project(root), options("--live"), target(root))
    assert project.issues == ["'chat' exists and is not a directory: choose another --domain."]
    assert project.changed == []


def test_a_block_the_settings_patcher_declines_after_editing_the_file_keeps_its_notice(
    root: Path,
) -> None:
    settings = root / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text() + "\ntry:\n    from .local import *\nexcept ImportError:\n    pass\n"
    )
    project = gen_chat(Project(root), options("--live"), target(root))
    assert project.files[P("mysite/settings.py")].status == "update"
    notices = "\n".join(project.notices)
    assert 'OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")' in notices
    assert 'ASGI_APPLICATION = "mysite.asgi.application"' in notices


def _cookiecutter(tmp_path: Path) -> tuple[Path, Target]:
    shutil.copytree(CASES / "cookiecutter" / "input", tmp_path, dirs_exist_ok=True)
    facts = target(
        tmp_path,
        settings_file=P("config/settings/local.py"),
        settings_module="config.settings.local",
        urls_file=P("config/urls.py"),
        asgi_module=None,
        wsgi_module="config.wsgi",
    )
    return tmp_path, facts


def test_split_settings_are_patched_where_installed_apps_is_defined(tmp_path: Path) -> None:
    root, facts = _cookiecutter(tmp_path)
    project = gen_chat(Project(root), options("--live"), facts)
    assert settings_chain(project, facts, "INSTALLED_APPS") == [
        P("config/settings/local.py"),
        P("config/settings/base.py"),
    ]
    base = project.files[P("config/settings/base.py")].after
    assert (
        '"django.contrib.sitemaps",\n    "django.contrib.postgres",\n'
        '    "procrastinate.contrib.django",\n' in base
    )
    assert '    "django_ai_chat",\n]\n\nLOCAL_APPS' in base
    assert '"myproject.users",\n    "chat",\n' in base
    assert '"django.middleware.clickjacking.XFrameOptionsMiddleware",\n    "django_htmx.' in base
    assert 'OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")' in base
    assert '"daphne",' not in base  # local.py puts its apps first at runtime: daphne goes there
    local = project.files[P("config/settings/local.py")].after
    assert 'INSTALLED_APPS = ["daphne", "django.contrib.humanize", *INSTALLED_APPS]' in local
    assert not [n for n in project.notices if "INSTALLED_APPS" in n or "MIDDLEWARE" in n]


def test_a_missing_asgi_py_is_written_beside_wsgi_py(tmp_path: Path) -> None:
    root, facts = _cookiecutter(tmp_path)
    project = gen_chat(Project(root), options("--live"), facts)
    asgi = project.files[P("config/asgi.py")]
    assert asgi.status == "create"
    assert 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")' in (
        asgi.after
    )
    assert "application = get_asgi_application()" in asgi.after
    base = project.files[P("config/settings/base.py")].after
    assert 'ASGI_APPLICATION = "config.asgi.application"' in base
    no_ui = gen_chat(Project(root), options(), facts)
    assert P("config/asgi.py") not in no_ui.files


def test_without_wsgi_py_asgi_py_goes_in_the_settings_top_package(root: Path) -> None:
    (root / "mysite" / "asgi.py").unlink()
    facts = target(root, asgi_module=None, settings_module="mysite.settings")
    project = gen_chat(Project(root), options("--live"), facts)
    assert project.files[P("mysite/asgi.py")].status == "create"
    assert (
        "'DJANGO_SETTINGS_MODULE', 'mysite.settings'"
        not in project.files[P("mysite/asgi.py")].after
    )
    assert "ASGI_APPLICATION = 'mysite.asgi.application'" in (
        project.files[P("mysite/settings.py")].after
    )


def test_star_imports_are_followed_from_a_src_directory(tmp_path: Path) -> None:
    settings_dir = tmp_path / "src" / "config" / "settings"
    settings_dir.mkdir(parents=True)
    (settings_dir / "dev.py").write_text("from config.settings.common import *  # noqa\n")
    (settings_dir / "common.py").write_text("INSTALLED_APPS = ['a']\n")
    facts = target(
        tmp_path,
        settings_file=P("src/config/settings/dev.py"),
        settings_module="config.settings.dev",
        source_root=P("src"),
    )
    assert settings_chain(Project(tmp_path), facts, "INSTALLED_APPS") == [
        P("src/config/settings/dev.py"),
        P("src/config/settings/common.py"),
    ]
    assert settings_chain(Project(tmp_path), facts, "MIDDLEWARE") == [
        P("src/config/settings/dev.py")
    ]


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("requirements.txt", "Django==5.1.2\n"),
        ("requirements/base.txt", "-r common.txt\ndjango>=4.2,<5.1  # LTS\n"),
        ("pyproject.toml", '[project]\ndependencies = ["Django==5.1.2"]\n'),
    ],
)
def test_a_project_pinned_to_an_unsupported_django_is_refused(
    root: Path, where: str, text: str
) -> None:
    (root / where).parent.mkdir(exist_ok=True)
    (root / where).write_text(text)
    project = gen_chat(Project(root), options("--live"), target(root))
    [issue] = project.issues
    assert issue.startswith(f"{where} pins ")
    assert "supports Django >=5.2 (5.2 LTS and 6.0)" in issue
    assert project.files == {}


def test_a_supported_django_pin_gets_a_requirement_that_resolves_with_it(root: Path) -> None:
    (root / "requirements.txt").write_text("django==5.2.8\n")
    project = gen_chat(Project(root), options("--live"), target(root))
    assert not project.issues
    assert project.files[P("requirements.txt")].after.startswith("django==5.2.8\ndjango-ai-chat")
