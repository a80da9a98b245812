"""`ChatOptions`: the generator's options, parsed, validated and turned into template context.

One declaration serves the three command lines that take them (`django-ai-chat gen`,
`manage.py gen_chat` and, for the chat it generates, `django-ai-chat new`): `OPTIONS` declares
each option once, `add_arguments()` puts them (or some) on an argparse parser, the `clean_*`
functions check what a value may look like wherever it is given, and
`ChatOptions.from_namespace()` validates a whole run against the running Django project.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django_ai_chat import __version__
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.llm import DEFAULT_MODELS

PROVIDERS: dict[str, tuple[str | None, str]] = {
    # provider: (API key environment variable, django-ai-chat extra)
    "openai": ("OPENAI_API_KEY", "openai"),
    "anthropic": ("ANTHROPIC_API_KEY", "anthropic"),
    "gemini": ("GOOGLE_API_KEY", "google"),
    "ollama": (None, "openai"),
}
"""Every `--provider`, with the environment variable of its key and the package extra it needs."""

EXTENSIONS = ("admin",)
"""Every name `--extend` accepts."""

APIS = ("ai-sdk",)
"""Every name `--api` accepts: `ai-sdk` is the AI SDK's UI message stream (`useChat`)."""

EXAMPLES = """\
examples:
  resources only, no UI:
    %(prog)s --user accounts.User
  full page with a named app and Anthropic:
    %(prog)s --user accounts.User --live --provider anthropic --domain support_chat
  embeddable component with Gemini:
    %(prog)s --live-component --domain support_chat --provider gemini
  the AI SDK endpoints for a React front-end (useChat), with the page:
    %(prog)s --live --api ai-sdk
  everything:
    %(prog)s --live --live-component --domain support_chat --route /support/chat \\
        --provider anthropic --extend admin --api ai-sdk
  in CI: exit non-zero when the project is not in sync:
    %(prog)s --live --check
  after `pip install -U django-ai-chat`: update the generated app, merging your edits:
    %(prog)s --upgrade --dry-run
    %(prog)s --upgrade

exit codes: 0 done (or in sync), 1 would change files (--check) / aborted / a task failed,
2 done (or in sync) with warnings (generated files out of date, conflict markers written),
3 issues (nothing written).
"""

_ROUTE = re.compile(r"[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)*")


def default_model(provider: str) -> str:
    """The model string written into the generated `responder.py` for `provider`."""
    return DEFAULT_MODELS[provider]


OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "user": (
        ("--user",),
        {
            "metavar": "APP_LABEL.MODEL",
            "help": "the user model conversations belong to (default: AUTH_USER_MODEL when "
            "django.contrib.auth is installed, otherwise no-user mode)",
        },
    ),
    "domain": (
        ("--domain",),
        {"default": "chat", "help": "label of the chat's Django app (default: chat)"},
    ),
    "route": (
        ("--route",),
        {"default": "/chat", "help": "URL prefix of the chat pages (default: /chat)"},
    ),
    "provider": (
        ("--provider",),
        {
            "default": "openai",
            "metavar": "|".join(PROVIDERS),
            "help": "LLM provider; sets the default model and its API key setting "
            "(default: openai)",
        },
    ),
    "extend": (
        ("--extend",),
        {"default": "", "metavar": "NAME[,NAME]", "help": f"extras: {', '.join(EXTENSIONS)}"},
    ),
    "live": (("--live",), {"action": "store_true", "help": "generate the full-page chat UI"}),
    "live_component": (
        ("--live-component",),
        {"action": "store_true", "help": "generate the embeddable chat component (a template tag)"},
    ),
    "api": (
        ("--api",),
        {
            "default": None,
            "metavar": "|".join(APIS),
            "help": "also serve the chat as an HTTP API: ai-sdk = the AI SDK's UI message stream, "
            "for useChat / AI Elements / assistant-ui front-ends (endpoints under <route>/api/)",
        },
    ),
    "upgrade": (
        ("--upgrade",),
        {
            "action": "store_true",
            "help": "bring the generated app up to this version: files you did not edit are "
            "replaced, your edits are merged in (conflicts marked inline); options not given are "
            "taken from the app's .django-ai-chat.json",
        },
    ),
    "yes": (("--yes",), {"action": "store_true", "help": "write without asking"}),
    "dry_run": (
        ("--dry-run",),
        {"action": "store_true", "help": "print the changes as a diff and write nothing"},
    ),
    "check": (
        ("--check",),
        {
            "action": "store_true",
            "help": "write nothing; exit 0 when the project is in sync, else 1 (changes), "
            "2 (warnings: e.g. generated files out of date) or 3 (issues)",
        },
    ),
}
"""Every generator option, declared once: name in the namespace → (flags, `add_argument` kwargs)."""

NEW_PROJECT_OPTIONS = ("provider", "domain", "route", "live_component")
"""The generator options `django-ai-chat new` passes on (it always generates the page, `--live`)."""


def add_arguments(
    parser: argparse.ArgumentParser,
    names: Iterable[str] = OPTIONS,
    *,
    helps: Mapping[str, str] | None = None,
) -> None:
    """Declare the generator options `names` (default: all of them) on `parser`.

    `helps` replaces the help text of some, for a command that uses an option differently.
    """
    for name in names:
        flags, kwargs = OPTIONS[name]
        if helps and name in helps:
            kwargs = {**kwargs, "help": helps[name]}
        parser.add_argument(*flags, **kwargs)


def clean_provider(provider: str) -> str:
    """`--provider` as a key of `PROVIDERS` (case and spaces ignored).

    Raises:
        GeneratorError: not a known provider.
    """
    cleaned = str(provider).strip().lower()
    if cleaned not in PROVIDERS:
        raise GeneratorError(
            f"Unknown --provider {provider!r}; choose one of: {', '.join(PROVIDERS)}."
        )
    return cleaned


def clean_app_label(domain: str) -> str:
    """`--domain` as an app label (stripped), judged on its spelling alone.

    Raises:
        GeneratorError: not a lowercase Python identifier.
    """
    label = str(domain).strip()
    if not label.isidentifier() or keyword.iskeyword(label) or label != label.lower():
        raise GeneratorError(
            f"--domain {domain!r} is not a valid app label: use a lowercase Python identifier "
            "such as 'chat' or 'support_chat'."
        )
    return label


def clean_route(route: str) -> str:
    """`--route` without leading or trailing slashes (`""`: the site root).

    Raises:
        GeneratorError: not a plain URL path.
    """
    stripped = str(route).strip().strip("/")
    if stripped and not _ROUTE.fullmatch(stripped):
        raise GeneratorError(
            f"--route {route!r} is not a plain URL path; write it like '/chat' or '/support/chat'."
        )
    return stripped


@dataclass(frozen=True, kw_only=True)
class ChatOptions:
    """The validated options of one generator run."""

    app_label: str
    """The generated Django app (`--domain`)."""
    route: str
    """URL prefix without leading or trailing slashes (`""` mounts the chat at the root)."""
    provider: str
    """A key of `PROVIDERS`."""
    user_model: str | None
    """`"app_label.ModelName"` of the user model, or `None` for no-user mode."""
    live: bool = False
    live_component: bool = False
    extensions: tuple[str, ...] = ()
    api: str | None = None
    """`--api`: a name of `APIS`, or `None` (no API endpoints)."""
    upgrade: bool = False
    yes: bool = False
    dry_run: bool = False
    check: bool = False

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, *, root: Path) -> ChatOptions:
        """Validate parsed arguments against the configured Django project in `root`.

        Raises:
            GeneratorError: an option is malformed or names something that does not exist.
        """
        provider = clean_provider(ns.provider)
        extensions = tuple(sorted({e.strip() for e in str(ns.extend).split(",") if e.strip()}))
        unknown = [e for e in extensions if e not in EXTENSIONS]
        if unknown:
            raise GeneratorError(
                f"Unknown --extend {', '.join(map(repr, unknown))}; "
                f"known extensions: {', '.join(EXTENSIONS)}."
            )
        api = getattr(ns, "api", None)
        api = str(api).strip().lower() if api else None
        if api is not None and api not in APIS:
            raise GeneratorError(f"Unknown --api {api!r}; choose one of: {', '.join(APIS)}.")
        return cls(
            app_label=_app_label(str(ns.domain), root),
            route=clean_route(ns.route),
            provider=provider,
            user_model=_user_model(ns.user),
            live=bool(ns.live),
            live_component=bool(ns.live_component),
            extensions=extensions,
            api=api,
            upgrade=bool(ns.upgrade),
            yes=bool(ns.yes),
            dry_run=bool(ns.dry_run),
            check=bool(ns.check),
        )

    @property
    def model(self) -> str:
        """The default model string."""
        return default_model(self.provider)

    @property
    def api_key_env(self) -> str | None:
        """Environment variable (and setting) holding the provider's API key."""
        return PROVIDERS[self.provider][0]

    @property
    def extra(self) -> str:
        """The `django-ai-chat[<extra>]` the provider needs."""
        return PROVIDERS[self.provider][1]

    @property
    def ui(self) -> bool:
        """Whether a browser UI (page or component) or an API is generated: streams need ASGI."""
        return self.live or self.live_component or self.api is not None

    def context(self) -> dict[str, Any]:
        """The template context documented in `docs/architecture.md`."""
        return {
            "app_label": self.app_label,
            "camel": "".join(part.capitalize() for part in self.app_label.split("_")),
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "user_model": self.user_model,
            "live": self.live,
            "live_component": self.live_component,
            "admin": "admin" in self.extensions,
            "api": self.api or "",
            "version": __version__,
        }


def _app_label(domain: str, root: Path) -> str:
    label = clean_app_label(domain)
    from django.apps import apps

    from django_ai_chat.gen.target import source_dir

    home = source_dir(root)  # where the app goes: `src/` in a src layout
    for config in apps.get_app_configs():
        if config.label == label and Path(config.path).resolve() != (home / label).resolve():
            raise GeneratorError(
                f"--domain {label!r} clashes with the installed app {config.name!r} "
                f"(label {label!r}); choose another name."
            )
    spec = importlib.util.find_spec(label)
    if spec is not None and spec.origin is not None:
        location = Path(spec.origin).resolve().parent
        if location != (home / label).resolve():
            raise GeneratorError(
                f"--domain {label!r} would shadow the existing Python module {label!r} "
                f"({spec.origin}); choose another name."
            )
    return label


def _user_model(given: str | None) -> str | None:
    from django.apps import apps
    from django.conf import settings

    if given is None:
        if not apps.is_installed("django.contrib.auth"):
            return None
        given = str(settings.AUTH_USER_MODEL)
    try:
        model = apps.get_model(given)
    except (LookupError, ValueError):
        raise GeneratorError(
            f"--user {given!r} is not an installed model; write it as 'app_label.ModelName', "
            "e.g. 'accounts.User' (run without --user to use AUTH_USER_MODEL)."
        ) from None
    return str(model._meta.label)
