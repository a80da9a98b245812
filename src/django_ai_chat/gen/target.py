"""`Target`: what the generator needs to know about the Django project it writes into.

Everything read from the running Django configuration lives here, so the tasks stay pure
functions of `(Project, ChatOptions, Target)` and can be tested with a hand-made `Target`.
"""

from __future__ import annotations

import os
import re
import sys
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


def setup_django(root: Path) -> None:
    """Configure Django for the project in `root`, as its `manage.py` would.

    `DJANGO_SETTINGS_MODULE` from the environment wins (as with `manage.py`'s `setdefault`);
    otherwise it is read from `manage.py`.

    Raises:
        GeneratorError: no settings module can be found, or importing it fails.
    """
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
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import django

    try:
        django.setup()
    except Exception as error:
        raise GeneratorError(
            f"Loading the settings {module!r} failed: {error!r}. Fix the project so that "
            "`python manage.py check` runs, then run the generator again."
        ) from error


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

    @classmethod
    def from_django(cls, root: Path) -> Target:
        """Read a `Target` from the configured Django project (after `setup_django`)."""
        from django.conf import settings
        from django.db import connections

        settings_module = str(settings.SETTINGS_MODULE)
        urls_module = str(settings.ROOT_URLCONF)
        login_url = str(settings.LOGIN_URL)
        urlconfs, resolves = _urls(login_url)
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
            login_url_resolves=resolves,
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


def _urls(login_url: str) -> tuple[frozenset[str], bool]:
    """Dotted names of the URLconfs the root URLconf includes, and whether `login_url` resolves."""
    from django.shortcuts import resolve_url
    from django.urls import get_resolver, resolve

    try:
        patterns = get_resolver().url_patterns
    except Exception:
        return frozenset(), False
    names = set()
    for pattern in patterns:
        urlconf = getattr(pattern, "urlconf_name", None)
        if urlconf is not None:
            names.add(getattr(urlconf, "__name__", str(urlconf)))
    try:
        # LOGIN_URL may be a URL name ("accounts:login"): turn it into a path first.
        path = resolve_url(login_url)
        resolves = path.startswith(("http://", "https://")) or bool(resolve(path))
    except Exception:  # Resolver404, or a URLconf that fails to import: not resolvable.
        resolves = False
    return frozenset(names), resolves
