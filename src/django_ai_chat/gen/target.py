"""`Target`: what the generator needs to know about the Django project it writes into.

Everything read from the running Django configuration lives here, so the tasks stay pure
functions of `(Project, ChatOptions, Target)` and can be tested with a hand-made `Target`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django_ai_chat.gen.errors import GeneratorError

SETTINGS_DEFAULT = re.compile(
    r"""os\.environ\.setdefault\(\s*['"]DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]\s*\)"""
)
"""`manage.py`'s (or `wsgi.py`'s) default settings module."""
_HERE = PurePosixPath(".")


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `manage.py`.

    Raises:
        GeneratorError: there is none.
    """
    for directory in [start, *start.parents]:
        if (directory / "manage.py").is_file():
            return directory
    raise GeneratorError(
        f"No manage.py in {str(start)!r} or above it: run the generator from your Django "
        "project's directory (the one with manage.py)."
    )


def setup_django(root: Path, *, app_labels: tuple[str, ...] = ()) -> None:
    """Configure Django for the project in `root`, as its `manage.py` would.

    `manage.py` is run up to its `execute_from_command_line` call, so what it does first
    happens here too: `sys.path` additions (src layouts), `.env` loading, the default
    `DJANGO_SETTINGS_MODULE` (the environment's wins, as with its `setdefault`). When running it
    fails, the settings module is read from its text.

    Args:
        root: The directory holding `manage.py`.
        app_labels: Apps the generator is about to write: a settings module may list them in
            `INSTALLED_APPS` already (pasted from a refusal), so an empty stand-in is imported
            until they exist.

    Raises:
        GeneratorError: no settings module can be found, or importing it fails.
    """
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    _run_manage_py(root)
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not module:
        match = SETTINGS_DEFAULT.search((root / "manage.py").read_text())
        if match is None:
            raise GeneratorError(
                f"Cannot tell the settings module from {str(root / 'manage.py')!r}: "
                "set DJANGO_SETTINGS_MODULE (e.g. 'mysite.settings') and run again."
            )
        module = match.group(1)
        os.environ["DJANGO_SETTINGS_MODULE"] = module
    for label in app_labels:
        _stand_in(label, _home(root, module))
    import django

    try:
        django.setup()
    except Exception as error:
        raise GeneratorError(
            f"Loading the settings {module!r} failed: {error!r}. Fix the project so that "
            "`python manage.py check` runs, then run the generator again."
        ) from error


class _ManagePyDone(Exception):
    """Raised in place of `execute_from_command_line`: manage.py has set everything up."""


def _run_manage_py(root: Path) -> None:
    import runpy

    from django.core import management

    def stop(argv: list[str] | None = None) -> None:
        raise _ManagePyDone

    saved = management.execute_from_command_line, sys.argv
    management.execute_from_command_line = stop
    sys.argv = [str(root / "manage.py"), "gen_chat"]
    try:
        runpy.run_path(str(root / "manage.py"), run_name="__main__")
    except _ManagePyDone:
        pass
    except (Exception, SystemExit):
        # A manage.py that does more than set up (or fails): its text is read instead.
        pass
    finally:
        management.execute_from_command_line, sys.argv = saved


def _home(root: Path, settings_module: str) -> Path:
    """Where the generated app will live (see `source_dir`), found before Django is set up."""
    found = _found_file(root, settings_module)
    return root / _source_root(found, settings_module)


def _stand_in(label: str, home: Path) -> None:
    import importlib.machinery
    import importlib.util
    import types

    if not label.isidentifier() or label in sys.modules:
        return
    try:
        if importlib.util.find_spec(label) is not None:
            return
    except (ImportError, ValueError):
        return
    module = types.ModuleType(label)
    module.__spec__ = importlib.machinery.ModuleSpec(label, None, is_package=True)
    module.__path__ = [str(home / label)]
    sys.modules[label] = module


@dataclass(frozen=True, kw_only=True)
class Target:
    """The configured project: file locations and the runtime values of the settings we touch."""

    root: Path
    settings_file: PurePosixPath | None
    """Relative to `root`; `None` when the settings module lives outside the project."""
    urls_file: PurePosixPath | None
    asgi_module: str | None
    """Dotted module holding the project's ASGI `application` (`None`: not found)."""
    installed_apps: tuple[str, ...]
    middleware: tuple[str, ...]
    defined_settings: frozenset[str] = field(default_factory=frozenset)
    database_vendor: str = "postgresql"
    included_urlconfs: frozenset[str] = field(default_factory=frozenset)
    login_url: str = "/accounts/login/"
    login_url_resolves: bool = True
    settings_module: str = ""
    """Dotted name of the active settings module (`DJANGO_SETTINGS_MODULE`)."""
    source_root: PurePosixPath = _HERE
    """The directory (relative to `root`) the settings' top package is imported from: `src`
    in a src layout."""
    wsgi_module: str | None = None
    """Dotted module of `WSGI_APPLICATION` when it is a file of the project."""
    login_path: str = "/accounts/login/"
    """`LOGIN_URL` as a path (a URL name resolved)."""
    login_caught_all: bool = False
    """`LOGIN_URL` is taken only by a catch-all route (Wagtail's page router): no login page."""
    login_template_missing: str | None = None
    """The template `LOGIN_URL`'s `LoginView` renders, when no loader finds it."""
    asgi_application: str | None = None
    """The `ASGI_APPLICATION` setting, when set."""
    asgi_error: str | None = None
    """Why `ASGI_APPLICATION` does not import (`None`: it imports, or is not set)."""
    view_of: Callable[[str], str | None] = field(default=lambda path: None, compare=False)
    """Dotted name of the view a path resolves to (`None`: 404, or a catch-all route)."""
    runserver_apps: tuple[str, ...] = ()
    """Installed apps with their own `runserver` command, in `INSTALLED_APPS` order."""

    @classmethod
    def from_django(cls, root: Path) -> Target:
        """Read a `Target` from the configured Django project (after `setup_django`)."""
        from django.conf import settings
        from django.db import connections

        settings_module = str(settings.SETTINGS_MODULE)
        urls_module = str(settings.ROOT_URLCONF)
        login_url = str(settings.LOGIN_URL)
        urlconfs, login_path = _urls(login_url)
        login_view = _view_of(login_path) if login_path.startswith("/") else None
        asgi_application = getattr(settings, "ASGI_APPLICATION", None)
        settings_file = _module_file(root, settings_module)
        wsgi = str(getattr(settings, "WSGI_APPLICATION", None) or "").rpartition(".")[0]
        return cls(
            root=root,
            settings_file=settings_file,
            settings_module=settings_module,
            source_root=_source_root(settings_file, settings_module),
            wsgi_module=wsgi if wsgi and _found_file(root, wsgi) is not None else None,
            urls_file=_module_file(root, urls_module),
            asgi_module=_asgi_module(root, settings_module),
            installed_apps=tuple(settings.INSTALLED_APPS),
            middleware=tuple(settings.MIDDLEWARE),
            defined_settings=frozenset(dir(settings)),
            database_vendor=connections["default"].vendor,
            included_urlconfs=urlconfs,
            login_url=login_url,
            login_url_resolves=login_path.startswith(("http://", "https://"))
            or login_view is not None,
            login_path=login_path,
            login_caught_all=login_view is None
            and login_path.startswith("/")
            and _callback(login_path) is not None,
            login_template_missing=_login_template_missing(login_path),
            asgi_application=str(asgi_application) if asgi_application else None,
            asgi_error=_import_error(str(asgi_application)) if asgi_application else None,
            view_of=_view_of,
            runserver_apps=_runserver_apps(),
        )

    def has_setting(self, name: str) -> bool:
        """Whether the running configuration defines `name` (wherever it is defined)."""
        return name in self.defined_settings

    def module_path(self, dotted: str) -> PurePosixPath:
        """Where the project module `dotted` lives (or would live), relative to `root`."""
        return self.source_root.joinpath(*dotted.split(".")).with_suffix(".py")

    def module_files(self, dotted: str) -> tuple[PurePosixPath, PurePosixPath]:
        """The two files that may hold the project module or package `dotted`."""
        base = self.source_root.joinpath(*dotted.split("."))
        return base.with_suffix(".py"), base / "__init__.py"


def source_dir(root: Path) -> Path:
    """The directory the project's packages are imported from (`root/src` in a src layout).

    The generated app goes there, beside the settings' top package, so it imports wherever
    the project does (an ASGI server run with `--app-dir src` too).
    """
    from django.conf import settings

    dotted = str(settings.SETTINGS_MODULE)
    return root / _source_root(_module_file(root, dotted), dotted)


def _source_root(settings_file: PurePosixPath | None, dotted: str) -> PurePosixPath:
    if settings_file is None:
        return PurePosixPath(".")
    depth = len(dotted.split(".")) + (settings_file.name == "__init__.py")
    parts = settings_file.parts[: max(len(settings_file.parts) - depth, 0)]
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _module_file(root: Path, dotted: str) -> PurePosixPath | None:
    module: Any = sys.modules.get(dotted)
    if module is None:
        import importlib

        try:
            module = importlib.import_module(dotted)
        except Exception:
            return None
    path = Path(getattr(module, "__file__", "") or "")
    try:
        return PurePosixPath(path.resolve().relative_to(root.resolve()).as_posix())
    except ValueError:
        return None


def _found_file(root: Path, dotted: str) -> PurePosixPath | None:
    """The project file of module `dotted`, found without running it (its packages are run)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(dotted)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        return PurePosixPath(Path(spec.origin).resolve().relative_to(root.resolve()).as_posix())
    except ValueError:
        return None


def _asgi_module(root: Path, settings_module: str) -> str | None:
    package = settings_module.rpartition(".")[0]
    while package:
        candidate = f"{package}.asgi"
        if _found_file(root, candidate) is not None:
            return candidate
        package = package.rpartition(".")[0]
    return None


def _urls(login_url: str) -> tuple[frozenset[str], str]:
    """Dotted names of the URLconfs the root URLconf includes, and `login_url` as a path."""
    from django.shortcuts import resolve_url
    from django.urls import get_resolver

    try:
        patterns = get_resolver().url_patterns
    except Exception:
        return frozenset(), login_url
    names = set()
    for pattern in patterns:
        urlconf = getattr(pattern, "urlconf_name", None)
        if urlconf is not None:
            names.add(getattr(urlconf, "__name__", str(urlconf)))
    try:
        # LOGIN_URL may be a URL name ("accounts:login"): turn it into a path first.
        path = str(resolve_url(login_url))
    except Exception:  # NoReverseMatch: a name nothing serves.
        path = login_url
    return frozenset(names), path


def _callback(path: str) -> Callable[..., Any] | None:
    from django.urls import resolve

    try:
        return resolve(path).func
    except Exception:  # Resolver404, or a URLconf that fails to import: not resolvable.
        return None


def _view_of(path: str) -> str | None:
    """The dotted name of the view serving `path`, unless it is a catch-all route.

    A catch-all (Wagtail's page router, a flatpages fallback) serves every path, so a path it
    resolves proves nothing: a path that cannot exist is tried too, and when the same view takes
    it, `path` counts as not served.
    """
    func = _callback(path)
    if func is None:
        return None
    probe = path.rstrip("/") + "-django-ai-chat-probe-0/"
    if _callback(probe) is func:
        return None
    view = getattr(func, "view_class", None) or func
    return f"{view.__module__}.{view.__qualname__}"


def _login_template_missing(path: str) -> str | None:
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        return None
    from django.contrib.auth.views import LoginView
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    func = _callback(path) if path.startswith("/") else None
    view = getattr(func, "view_class", None)
    if not (isinstance(view, type) and issubclass(view, LoginView)):
        return None
    initkwargs: dict[str, Any] = getattr(func, "view_initkwargs", {})
    name = str(initkwargs.get("template_name") or view.template_name)
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return name
    except Exception:  # A broken template exists: not ours to report here.
        return None
    return None


def _import_error(dotted: str) -> str | None:
    from django.utils.module_loading import import_string

    try:
        import_string(dotted)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _runserver_apps() -> tuple[str, ...]:
    from django.apps import apps
    from django.core.management import find_commands

    return tuple(
        config.name
        for config in apps.get_app_configs()
        if "runserver" in find_commands(str(Path(config.path) / "management"))
    )
