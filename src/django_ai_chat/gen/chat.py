"""The `gen chat` task: the generated app, the settings, the URLconf and the dependencies.

`gen_chat(project, opts, target)` only records changes, feedback and follow-up tasks in the
`Project`; nothing is written here.

Longer than our usual modules: one task reads one project, and its steps (app files, settings
chain, URLconf, login, dependencies, notices) share the helpers that find where each goes; the
patchers themselves (`gen/patch/`) and the templates are elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import Requirement

from django_ai_chat import __version__
from django_ai_chat.gen.manifest import (
    MANIFEST_NAME,
    Entry,
    Manifest,
    recorded_options,
)
from django_ai_chat.gen.options import ChatOptions
from django_ai_chat.gen.patch import _cst, deps, settings, urls
from django_ai_chat.gen.project import FileChange, Project
from django_ai_chat.gen.render import APP_TEMPLATE, RenderedFile, render_files, render_snippet
from django_ai_chat.gen.target import SETTINGS_DEFAULT, Target

# django.contrib.postgres: the search indexes are GinIndexes (Django 6 checks for the app).
WORKER_APPS = ("django.contrib.postgres", "procrastinate.contrib.django", "django_ai_chat")
UI_APPS = ("django_htmx",)
HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"
DAPHNE_VERSION = ">=4.1"


def gen_chat(
    project: Project, opts: ChatOptions, target: Target, *, templates: Path = APP_TEMPLATE
) -> Project:
    """Record everything `gen chat` does to the project; returns `project` for chaining.

    `templates` is the app template directory (another one in tests: "version N's templates").
    """
    context = opts.context()
    app = target.source_root / opts.app_label
    if (project.root / app).exists() and not (project.root / app).is_dir():
        project.add_issue(f"{str(app)!r} exists and is not a directory: choose another --domain.")
        return project
    if _django_pinned_away(project):
        return project
    rendered = render_files(context, templates)
    has_urls = PurePosixPath("urls.py") in rendered
    if has_urls and _route_taken(project, opts, target):
        return project
    _app_files(project, opts, app, rendered)
    by_hand: list[str] = []
    installed = _installed_apps(project, opts, target, by_hand)
    _settings(project, opts, target, context, by_hand)
    if not installed:
        # An app that cannot be installed breaks whatever needs it (the URL include makes
        # `manage.py check` fail): write nothing, and say exactly what to add.
        _refuse(project, opts, target, by_hand)
        return project
    for notice in by_hand:
        project.add_notice(notice)
    if has_urls:
        _urls(project, opts, target)
    if opts.user_model and opts.ui:
        _login(project, opts, target)
    _dependencies(project, opts)
    if PurePosixPath("models.py") in rendered and _needs_migration(project, opts, app):
        # --skip-checks: a project still on SQLite fails django_ai_chat's Postgres check, which
        # must not stop the migration from being written (migrate reports it later).
        project.add_task("makemigrations", opts.app_label, "--no-header", "--skip-checks")
    _notices(project, opts, target, context)
    if opts.check:
        for problem in effective_problems(opts, target, has_urls=has_urls):
            project.add_pending(problem)
    return project


def _app_files(
    project: Project,
    opts: ChatOptions,
    app: PurePosixPath,
    rendered: dict[PurePosixPath, RenderedFile],
) -> None:
    """Record the app's files, judged against its manifest, and the manifest's new content."""
    try:
        manifest = Manifest.read(project.root / app)
    except ValueError as error:
        project.add_warning(
            f"{app / MANIFEST_NAME}: {error}; every generated file that differs is treated as "
            "edited. Delete the manifest to silence this."
        )
        manifest = None
    old = manifest.files if manifest else {}
    label = f"django-ai-chat {__version__}"
    kept: dict[str, Entry] = {}
    changes: list[FileChange] = []
    for path, file in rendered.items():
        name = path.as_posix()
        change = project.create_file(
            app / path, file.content, record=old.get(name), upgrade=opts.upgrade, label=label
        )
        changes.append(change)
        if change.status in ("outdated", "edited"):
            if name in old:
                kept[name] = old[name]
        elif change.status != "skip":
            kept[name] = Entry.of(file)
    for name in sorted(set(old) - {p.as_posix() for p in rendered}):
        # No longer generated: an upgrade deletes it unless edited; a re-run only remembers it.
        removed = project.remove_file(app / name, old[name]) if opts.upgrade else None
        if removed is not None and removed.status == "edited":
            project.add_notice(
                f"{removed.path} is no longer generated by django-ai-chat {__version__} "
                "and you edited it: kept. Delete it if nothing imports it."
            )
        if (removed is None or removed.status == "edited") and project.read(app / name) is not None:
            kept[name] = old[name]
    _report(project, opts, app, manifest, changes)
    wrote = any(c.writes for c in project.files.values() if app in c.path.parents)
    if manifest is None or wrote:
        manifest = Manifest(__version__, recorded_options(opts), kept)
    else:
        manifest = Manifest(manifest.version, manifest.options, kept)
    path = app / MANIFEST_NAME
    text = manifest.render()
    if project.read(path) is None:
        project.create_file(path, text)
    else:
        project.update_file(path, lambda _: text)


def _report(
    project: Project,
    opts: ChatOptions,
    app: PurePosixPath,
    manifest: Manifest | None,
    changes: list[FileChange],
) -> None:
    """Warn about generated files left out of date and conflicts written."""
    outdated = [str(c.path) for c in changes if c.status == "outdated"]
    conflicts = [str(c.path) for c in changes if c.status == "conflict"]
    differing = [c for c in changes if c.status not in ("create", "identical", "skip")]
    if manifest is None and differing:
        project.add_warning(
            f"{app}/ has no {MANIFEST_NAME} (generated before django-ai-chat recorded what it "
            f"wrote): the {len(differing)} generated file(s) that differ from this version's "
            "are treated as edited by you. "
            + (
                "Each difference is marked as a conflict: keep your lines or the new ones."
                if opts.upgrade
                else "`--upgrade --dry-run` shows what an upgrade writes (every difference "
                "marked as a conflict); for a file you never edited, delete it and run again."
            )
        )
    elif outdated and not opts.upgrade:
        project.add_warning(
            f"{len(outdated)} generated file(s) differ from what django-ai-chat {__version__} "
            f"generates and were kept: {', '.join(outdated)}. `gen --upgrade` updates the ones "
            "you did not edit and merges the new version into yours "
            "(`gen --upgrade --dry-run` shows it)."
        )
    elif outdated:
        project.add_warning(
            f"{len(outdated)} edited file(s) copied verbatim from django-ai-chat cannot be "
            f"merged and were kept: {', '.join(outdated)}. Compare them with the package's "
            "copies (`--dry-run` shows the difference)."
        )
    if conflicts:
        project.add_warning(
            f"{len(conflicts)} file(s) have conflict markers where your edits and the new "
            f"version changed the same lines: {', '.join(conflicts)}. Keep one side of each "
            "`<<<<<<< yours` ... `>>>>>>> django-ai-chat` block, then run the app's tests."
        )


def _route_taken(project: Project, opts: ChatOptions, target: Target) -> bool:
    """Refuse a `--route` another view serves already (unless it is ours, from a past run)."""
    view = target.view_of(_route_path(opts))
    if view is None or _is_ours(view, opts):
        return False
    suggestion = "assistant" if opts.route != "assistant" else "ai-chat"
    context = {"route": opts.route, "view": view, "suggestion": suggestion}
    project.add_issue(render_snippet("notices/route_taken.txt-tpl", context).strip())
    return True


def _route_path(opts: ChatOptions) -> str:
    return f"/{opts.route}/" if opts.route else "/"


def _is_ours(view: str, opts: ChatOptions) -> bool:
    return view.startswith((f"{opts.app_label}.", "django_ai_chat."))


def _refuse(project: Project, opts: ChatOptions, target: Target, by_hand: list[str]) -> None:
    chain = settings_chain(project, target, "INSTALLED_APPS")
    where = str(chain[-1]) if chain else "your settings"
    context = {"app_label": opts.app_label, "where": where, "steps": "\n\n".join(by_hand)}
    project.files.clear()
    project.tasks.clear()
    project.notices.clear()
    project.add_issue(render_snippet("notices/refusal.txt-tpl", context).rstrip())


def effective_problems(opts: ChatOptions, target: Target, *, has_urls: bool) -> list[str]:
    """What still keeps the chat from working in the running project, each with its fix.

    Judged on the runtime configuration (`Target`), not on the files: a notice not yet applied,
    an app missing from the settings module in use, a route shadowed by another view.
    """
    problems: list[str] = []
    settings_file = str(target.settings_file or "your settings")
    wanted = [*WORKER_APPS[:2], *(UI_APPS if opts.ui else ()), *WORKER_APPS[2:], opts.app_label]
    wanted += ["daphne"] if opts.ui else []
    missing = [a for a in wanted if not _installed(target, a)]
    if missing:
        names = ", ".join(map(repr, missing))
        problems.append(
            f"INSTALLED_APPS of {target.settings_module or settings_file!r} lacks {names}."
        )
    first = target.runserver_apps[0] if target.runserver_apps else "daphne"
    if opts.ui and first != "daphne" and _installed(target, "daphne"):
        problems.append(
            f"{first!r} comes before 'daphne' in INSTALLED_APPS, so its runserver (no ASGI, "
            "no live streams) wins: put 'daphne' first."
        )
    if opts.ui and HTMX_MIDDLEWARE not in target.middleware:
        problems.append(f"MIDDLEWARE lacks {HTMX_MIDDLEWARE!r}.")
    if opts.ui:
        if target.asgi_application is None:
            problems.append("ASGI_APPLICATION is not set (the live streams need ASGI).")
        elif target.asgi_error is not None:
            problems.append(
                f"ASGI_APPLICATION {target.asgi_application!r} does not import: "
                f"{target.asgi_error}."
            )
    if has_urls:
        path = _route_path(opts)
        view = target.view_of(path)
        if view is None:
            urlconf = target.urls_file or "your root URLconf"
            problems.append(
                f"{path} is not served: add "
                f'path("{path[1:]}", include("{opts.app_label}.urls")) to {urlconf}.'
            )
        elif not _is_ours(view, opts):
            problems.append(f"{path} is served by {view}, not by the chat: choose another --route.")
    if opts.user_model and opts.ui:
        if not target.login_url_resolves:
            problems.append(
                f"LOGIN_URL ({target.login_url}) does not resolve to a login page: signed-out "
                "visitors of the chat get a 404."
            )
        elif target.login_template_missing:
            problems.append(
                f"LOGIN_URL ({target.login_url}) renders {target.login_template_missing!r}, "
                "which does not exist."
            )
    return problems


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


def _installed_apps(
    project: Project, opts: ChatOptions, target: Target, by_hand: list[str]
) -> bool:
    """Add the apps and middleware; `True` when the generated app is (or will be) installed."""
    ours = [*WORKER_APPS[:2], *(UI_APPS if opts.ui else ()), *WORKER_APPS[2:]]
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
            by_hand.append(render_snippet("notices/installed_apps.txt-tpl", notice))
    if middleware:
        chain = settings_chain(project, target, "MIDDLEWARE")
        file = chain[-1] if chain else None
        add_middleware = partial(
            settings.add_to_list_setting_new, name="MIDDLEWARE", values=middleware
        )
        if not (file is not None and _patch(project, file, add_middleware)):
            notice = {"where": str(file or "your settings"), "names": middleware}
            by_hand.append(render_snippet("notices/middleware.txt-tpl", notice))
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


def _settings(
    project: Project,
    opts: ChatOptions,
    target: Target,
    context: dict[str, Any],
    by_hand: list[str],
) -> None:
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
    manual: list[tuple[str, tuple[str, ...]]] = []
    for name, code, imports in blocks:
        recognised = name != "ASGI_APPLICATION" or asgi is not None
        configure = partial(settings.configure_new, name=name, code=code, imports=imports)
        if not (recognised and file is not None and _patch(project, file, configure)):
            manual.append((code, imports))
    if manual:
        notice = {
            "where": str(file or "your settings"),
            "blocks": [code for code, _ in manual],
            "imports": sorted({module for _, imports in manual for module in imports}),
        }
        by_hand.append(render_snippet("notices/setting.txt-tpl", notice))


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


def _login(project: Project, opts: ChatOptions, target: Target) -> None:
    """Make `LOGIN_URL` a login page: Django's auth URLs and a template, when nothing serves it."""
    template = target.source_root / opts.app_label / "templates" / "registration" / "login.html"
    context = {**opts.context(), "login_url": target.login_url}
    if target.login_url_resolves:
        if target.login_template_missing == "registration/login.html":
            project.create_file(template, render_snippet("login/login.html-tpl", context))
        elif target.login_template_missing:
            notice = {**context, "template": target.login_template_missing}
            project.add_notice(render_snippet("notices/login_template.txt-tpl", notice))
        return
    allauth = any(a == "allauth" or a.startswith("allauth.") for a in target.installed_apps)
    auth_urls = "django.contrib.auth.urls"
    if (
        not allauth
        and target.login_path == "/accounts/login/"
        and _installed(target, "django.contrib.auth")
        and auth_urls not in target.included_urlconfs
        and target.urls_file is not None
        and _patch(project, target.urls_file, lambda s: urls.include_new(s, "accounts", auth_urls))
    ):
        project.create_file(template, render_snippet("login/login.html-tpl", context))
        return
    notice = {**context, "allauth": allauth, "catch_all": target.login_caught_all}
    project.add_notice(render_snippet("notices/login.txt-tpl", notice))


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


def supported_django() -> str:
    """The Django versions this django-ai-chat supports (its own requirement, e.g. `>=5.2`)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("django-ai-chat") or []
    except PackageNotFoundError:
        declared = []
    for line in declared:
        requirement = Requirement(line)
        if requirement.name.lower() == "django" and requirement.marker is None:
            return str(requirement.specifier)
    return ">=5.2"


def _django_pinned_away(project: Project) -> bool:
    """Refuse when the project's dependencies pin a Django this version does not support.

    Installing django-ai-chat upgrades Django behind such a pin, and a requirement line added
    next to it could never be resolved.
    """
    supported = supported_django()
    sources: list[tuple[str, list[str]]] = []
    pyproject = project.read(PurePosixPath("pyproject.toml"))
    if pyproject is not None:
        sources.append(("pyproject.toml", deps.pyproject_requirements(pyproject)))
    names = {*_REQUIREMENTS_FILES}
    for pattern in (
        "requirements*.txt",
        "requirements*.in",
        "requirements/*.txt",
        "requirements/*.in",
    ):
        names |= {p.relative_to(project.root).as_posix() for p in project.root.glob(pattern)}
    for name in sorted(names):
        text = project.read(PurePosixPath(name))
        if text is not None:
            sources.append((name, deps.requirements_lines(text)))
    for where, lines in sources:
        for line in deps.conflicting(lines, "django", supported):
            project.add_issue(
                f"{where} pins {line!r}, but django-ai-chat {__version__} supports Django "
                f"{supported} (5.2 LTS and 6.0): installing it upgrades Django behind that pin. "
                "Move the project to Django 5.2 first (e.g. 'Django>=5.2,<6.1'), then run the "
                "generator again."
            )
    return bool(project.issues)


def _needs_migration(project: Project, opts: ChatOptions, app: PurePosixPath) -> bool:
    """A new app gets its first migration; an upgrade, the migration of what came since.

    The runtime's abstract models gain fields (usage and cost after 0.1.0) and the templates new
    models (feedback): `makemigrations` writes nothing when nothing is new. Not under --check (a
    task would count as a change there), nor after a conflict in models.py (it would not import).
    """
    if not _has_migrations(project, app):
        return True
    models = project.files.get(app / "models.py")
    conflict = models is not None and models.status == "conflict"
    return opts.upgrade and not opts.check and not conflict


def _has_migrations(project: Project, app: PurePosixPath) -> bool:
    directory = project.root / app / "migrations"
    return directory.is_dir() and any(
        p.suffix == ".py" and p.name != "__init__.py" for p in directory.iterdir()
    )


def _notices(project: Project, opts: ChatOptions, target: Target, context: dict[str, Any]) -> None:
    if target.database_vendor != "postgresql":
        notice = {"vendor": target.database_vendor, **context}
        project.add_notice(render_snippet("notices/postgres.txt-tpl", notice))
    if opts.user_model is None:
        project.add_notice(render_snippet("notices/no_user.txt-tpl", context))
    if opts.live_component:
        project.add_notice(render_snippet("notices/component.txt-tpl", context))
    project.add_notice(render_snippet("notices/tools.txt-tpl", context))
    project.add_notice(render_snippet("notices/next_steps.txt-tpl", context))
