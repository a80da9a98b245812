"""The `gen chat` task: the generated app, the settings, the URLconf and the dependencies.

`gen_chat(project, opts, target)` only records changes, feedback and follow-up tasks in the
`Project`; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from django_ai_chat import __version__
from django_ai_chat.gen.options import ChatOptions
from django_ai_chat.gen.patch import deps, settings, urls
from django_ai_chat.gen.project import Project
from django_ai_chat.gen.render import render_snippet, render_tree
from django_ai_chat.gen.target import Target

WORKER_APPS = ("procrastinate.contrib.django", "django_ai_chat")
UI_APPS = ("django_htmx",)
HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"
DAPHNE_VERSION = ">=4.1"


def gen_chat(project: Project, opts: ChatOptions, target: Target) -> Project:
    """Record everything `gen chat` does to the project; returns `project` for chaining."""
    context = opts.context()
    app = PurePosixPath(opts.app_label)
    if (project.root / app).exists() and not (project.root / app).is_dir():
        project.add_issue(f"{str(app)!r} exists and is not a directory: choose another --domain.")
        return project
    rendered = render_tree(context)
    if not opts.ui:
        # Static assets are copied verbatim, so no template can switch them off: without a UI
        # they would be dead weight in the user's app.
        rendered = {p: c for p, c in rendered.items() if p.parts[0] != "static"}
    for path, content in rendered.items():
        project.create_file(app / path, content)
    installed = _installed_apps(project, opts, target)
    _settings(project, opts, target, context)
    if PurePosixPath("urls.py") in rendered:
        _urls(project, opts, target)
    _dependencies(project, opts)
    migrate = PurePosixPath("models.py") in rendered and not _has_migrations(project, app)
    if migrate and installed:
        # --skip-checks: a project still on SQLite fails django_ai_chat's Postgres check, which
        # must not stop the migration from being written (migrate reports it later).
        project.add_task("makemigrations", opts.app_label, "--no-header", "--skip-checks")
    # Without the app installed, makemigrations cannot run: it joins the checklist.
    _notices(project, opts, target, {**context, "makemigrations": migrate and not installed})
    return project


def _installed(target: Target, name: str) -> bool:
    return any(
        entry == name or entry.startswith(f"{name}.apps.") for entry in target.installed_apps
    )


def _patch(project: Project, path: PurePosixPath, patch: Callable[[str], str | None]) -> bool:
    """Apply one patcher; `False` when it did not recognise the file."""
    return project.update_file(path, patch).status != "skip"


def _installed_apps(project: Project, opts: ChatOptions, target: Target) -> bool:
    """Add the apps and middleware; `True` when the generated app is (or will be) installed."""
    wanted = [*WORKER_APPS[:1], *(UI_APPS if opts.ui else ()), *WORKER_APPS[1:], opts.app_label]
    last = [a for a in wanted if not _installed(target, a)]
    first = ["daphne"] if opts.ui and not _installed(target, "daphne") else []
    middleware = [HTMX_MIDDLEWARE] if opts.ui and HTMX_MIDDLEWARE not in target.middleware else []
    where = str(target.settings_file or "your settings")
    file = target.settings_file
    ok = True
    if last or first:
        patches = [partial(settings.add_to_list_setting_new, name="INSTALLED_APPS", values=last)]
        if first:
            patches.append(
                partial(
                    settings.add_to_list_setting_new,
                    name="INSTALLED_APPS",
                    values=first,
                    first=True,
                )
            )
        ok = file is not None and all(_patch(project, file, patch) for patch in patches)
        if not ok:
            notice = {"where": where, "first": first, "last": last}
            project.add_notice(render_snippet("notices/installed_apps.txt-tpl", notice))
    add_middleware = partial(settings.add_to_list_setting_new, name="MIDDLEWARE", values=middleware)
    if middleware and not (file is not None and _patch(project, file, add_middleware)):
        notice = {"where": where, "names": middleware}
        project.add_notice(render_snippet("notices/middleware.txt-tpl", notice))
    return ok or _installed(target, opts.app_label)


def _settings(project: Project, opts: ChatOptions, target: Target, context: dict[str, Any]) -> None:
    blocks: list[tuple[str, str, tuple[str, ...]]] = []
    if opts.api_key_env and not target.has_setting(opts.api_key_env):
        code = render_snippet("settings/api_key.py-tpl", context)
        blocks.append((opts.api_key_env, code, ("os",)))
    if opts.ui and not target.has_setting("ASGI_APPLICATION"):
        asgi = target.asgi_module or "<project>.asgi"
        code = render_snippet("settings/asgi_application.py-tpl", {**context, "asgi_module": asgi})
        blocks.append(("ASGI_APPLICATION", code, ()))
    file = target.settings_file
    by_hand: list[tuple[str, tuple[str, ...]]] = []
    for name, code, imports in blocks:
        recognised = name != "ASGI_APPLICATION" or target.asgi_module is not None
        configure = partial(settings.configure_new, name=name, code=code, imports=imports)
        if not (recognised and file is not None and _patch(project, file, configure)):
            by_hand.append((code, imports))
    if by_hand:
        notice = {
            "where": str(file or "your settings"),
            "blocks": [code for code, _ in by_hand],
            "imports": sorted({module for _, imports in by_hand for module in imports}),
        }
        project.add_notice(render_snippet("notices/setting.txt-tpl", notice))


def _urls(project: Project, opts: ChatOptions, target: Target) -> None:
    urlconf = f"{opts.app_label}.urls"
    if urlconf in target.included_urlconfs:
        return
    file = target.urls_file
    if file is None or not _patch(
        project, file, lambda s: urls.include_new(s, opts.route, urlconf)
    ):
        route = f"{opts.route}/" if opts.route else ""
        notice = {**opts.context(), "where": str(file or "your root URLconf"), "route": route}
        project.add_notice(render_snippet("notices/urls.txt-tpl", notice))


def requirements(opts: ChatOptions) -> list[str]:
    """The requirement lines the generated code needs in the project."""
    lines = [f"django-ai-chat[{opts.extra}]>={__version__}"]
    if opts.ui:
        lines.append(f"daphne{DAPHNE_VERSION}")
    return lines


# pip-tools' `.in` sources before the compiled `.txt`; shared files before per-environment ones.
_REQUIREMENTS_FILES = (
    "requirements.in",
    "requirements.txt",
    "requirements/base.in",
    "requirements/base.txt",
    "requirements/common.txt",
    "requirements/production.txt",
    "requirements/prod.txt",
)


def _dependencies(project: Project, opts: ChatOptions) -> None:
    wanted = requirements(opts)
    pyproject = PurePosixPath("pyproject.toml")
    if project.read(pyproject) is not None and _patch(
        project, pyproject, lambda s: deps.add_pyproject_dependencies_new(s, wanted)
    ):
        return
    for name in _REQUIREMENTS_FILES:
        path = PurePosixPath(name)
        if project.read(path) is not None:
            project.update_file(path, lambda s: deps.add_requirements_new(s, wanted))
            return
    notice = render_snippet("notices/dependencies.txt-tpl", {"requirements": wanted})
    project.add_notice(notice)


def _has_migrations(project: Project, app: PurePosixPath) -> bool:
    directory = project.root / app / "migrations"
    return directory.is_dir() and any(
        p.suffix == ".py" and p.name != "__init__.py" for p in directory.iterdir()
    )


def _notices(project: Project, opts: ChatOptions, target: Target, context: dict[str, Any]) -> None:
    if target.database_vendor != "postgresql":
        notice = {"vendor": target.database_vendor, **context}
        project.add_notice(render_snippet("notices/postgres.txt-tpl", notice))
    if opts.user_model and opts.ui and not target.login_url_resolves:
        notice = {"login_url": target.login_url, **context}
        project.add_notice(render_snippet("notices/login.txt-tpl", notice))
    if opts.user_model is None:
        project.add_notice(render_snippet("notices/no_user.txt-tpl", context))
    if opts.live_component:
        project.add_notice(render_snippet("notices/component.txt-tpl", context))
    project.add_notice(render_snippet("notices/tools.txt-tpl", context))
    project.add_notice(render_snippet("notices/next_steps.txt-tpl", context))
