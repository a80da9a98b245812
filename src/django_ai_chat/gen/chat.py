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
from django_ai_chat.gen.patch import _cst, deps, settings, urls
from django_ai_chat.gen.project import Project
from django_ai_chat.gen.render import render_snippet, render_tree
from django_ai_chat.gen.target import SETTINGS_DEFAULT, Target

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


def settings_chain(project: Project, target: Target, name: str) -> list[PurePosixPath]:
    """The active settings file, then the files it star-imports down to the one defining `name`.

    `[active]` when no file of the project defines `name` (the active file then gets the
    notice); `[]` when the settings module lives outside the project.
    """
    start = target.settings_file
    if start is None:
        return []

    def visit(path: PurePosixPath, seen: frozenset[PurePosixPath]) -> list[PurePosixPath] | None:
        source = project.read(path)
        if source is None or path in seen:
            return None
        if settings.defines(source, name):
            return [path]
        for level, dotted in settings.star_imports(source):
            for candidate in _star_imported(target, path, level, dotted):
                rest = visit(candidate, seen | {path})
                if rest:
                    return [path, *rest]
        return None

    return visit(start, frozenset()) or [start]


def _star_imported(
    target: Target, path: PurePosixPath, level: int, dotted: str
) -> tuple[PurePosixPath, ...]:
    try:
        package = path.relative_to(target.source_root).parts[:-1]
    except ValueError:
        return ()
    names = dotted.split(".") if dotted else []
    if level:
        if level - 1 > len(package):
            return ()
        names = [*package[: len(package) - (level - 1)], *names]
    return target.module_files(".".join(names)) if names else ()


def _installed_apps(project: Project, opts: ChatOptions, target: Target) -> bool:
    """Add the apps and middleware; `True` when the generated app is (or will be) installed."""
    ours = [*WORKER_APPS[:1], *(UI_APPS if opts.ui else ()), *WORKER_APPS[1:]]
    ours = [a for a in ours if not _installed(target, a)]
    app = [] if _installed(target, opts.app_label) else [opts.app_label]
    first = ["daphne"] if opts.ui and not _installed(target, "daphne") else []
    middleware = [HTMX_MIDDLEWARE] if opts.ui and HTMX_MIDDLEWARE not in target.middleware else []
    chain = settings_chain(project, target, "INSTALLED_APPS")
    file = chain[-1] if chain else None
    ok = True
    if ours or app or first:
        add = partial(settings.add_to_list_setting_new, name="INSTALLED_APPS")
        patches: list[tuple[PurePosixPath, Callable[[str], str | None]]] = []
        if file is not None:
            if ours:
                patches.append((file, partial(add, values=ours)))
            if app:
                patches.append((file, partial(add, values=app, role="local")))
            if first:
                patches.append(_daphne_patch(project, chain))
        ok = bool(patches) and all(_patch(project, path, patch) for path, patch in patches)
        if not ok:
            where = str(file or "your settings")
            notice = {"where": where, "first": first, "last": [*ours, *app]}
            project.add_notice(render_snippet("notices/installed_apps.txt-tpl", notice))
    if middleware:
        chain = settings_chain(project, target, "MIDDLEWARE")
        file = chain[-1] if chain else None
        add_middleware = partial(
            settings.add_to_list_setting_new, name="MIDDLEWARE", values=middleware
        )
        if not (file is not None and _patch(project, file, add_middleware)):
            notice = {"where": str(file or "your settings"), "names": middleware}
            project.add_notice(render_snippet("notices/middleware.txt-tpl", notice))
    return ok or _installed(target, opts.app_label)


def _daphne_patch(
    project: Project, chain: list[PurePosixPath]
) -> tuple[PurePosixPath, Callable[[str], str | None]]:
    """Where `daphne` goes: first in the list that comes first at runtime.

    A file run after the definition may put apps before it (`[..., *INSTALLED_APPS]`, the
    outermost such file winning); otherwise the defining file's first list.
    """
    prepend = partial(settings.prepend_to_extension_new, name="INSTALLED_APPS", value="daphne")
    for path in chain[:-1]:
        source = project.read(path)
        if source is not None and prepend(source) is not None:
            return path, prepend
    add = partial(
        settings.add_to_list_setting_new, name="INSTALLED_APPS", values=["daphne"], first=True
    )
    return chain[-1], add


def _settings(project: Project, opts: ChatOptions, target: Target, context: dict[str, Any]) -> None:
    blocks: list[tuple[str, str, tuple[str, ...]]] = []
    if opts.api_key_env and not target.has_setting(opts.api_key_env):
        code = render_snippet("settings/api_key.py-tpl", context)
        blocks.append((opts.api_key_env, code, ("os",)))
    asgi = target.asgi_module
    if opts.ui and not target.has_setting("ASGI_APPLICATION"):
        asgi = asgi or _create_asgi(project, target)
        code = render_snippet(
            "settings/asgi_application.py-tpl",
            {**context, "asgi_module": asgi or "<project>.asgi"},
        )
        blocks.append(("ASGI_APPLICATION", code, ()))
    chain = settings_chain(project, target, "INSTALLED_APPS")
    file = chain[-1] if chain else None
    by_hand: list[tuple[str, tuple[str, ...]]] = []
    for name, code, imports in blocks:
        recognised = name != "ASGI_APPLICATION" or asgi is not None
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


def _create_asgi(project: Project, target: Target) -> str | None:
    """Write a standard `asgi.py` beside `wsgi.py` (or in the settings' top package).

    Returns:
        Its dotted module, or `None` when there is no project package to put it in.
    """
    wsgi = target.wsgi_module
    package = wsgi.rpartition(".")[0] if wsgi else target.settings_module.partition(".")[0]
    if not package or package == target.settings_module:
        return None
    module = f"{package}.asgi"
    wsgi_source = project.read(target.module_path(wsgi)) if wsgi else None
    match = SETTINGS_DEFAULT.search(wsgi_source or "")
    context = {
        "package": package,
        "settings_module": match.group(1) if match else target.settings_module,
    }
    code = render_snippet("project/asgi.py-tpl", context)
    parsed = _cst.parse(wsgi_source) if wsgi_source is not None else None
    if parsed is not None:
        code = _cst.requote(code, _cst.quote_of(parsed))
    project.create_file(target.module_path(module), code)
    return module


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
