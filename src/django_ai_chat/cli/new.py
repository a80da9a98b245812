"""`django-ai-chat new`: a new Django project with email log-in and the chat, ready to run.

The Django counterpart of `mix igniter.new … --auth-strategy password` followed by
`mix ash_ai.gen.chat --live`: renders `gen/project_template/` (a project package, an `accounts`
app with a custom user model and sign-up / log-in / log-out pages, and its initial migration),
then runs `django-ai-chat gen --live --api ai-sdk --extend admin --yes` in it (the same as
`manage.py gen_chat`, which is not available before the generator adds `django_ai_chat` to
`INSTALLED_APPS`) with the options passed through.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from django_ai_chat import __version__
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.options import (
    NEW_PROJECT_OPTIONS,
    PROVIDERS,
    clean_app_label,
    clean_provider,
    clean_route,
    default_model,
)
from django_ai_chat.gen.options import add_arguments as add_chat_arguments
from django_ai_chat.gen.render import render_tree

PROJECT_TEMPLATE = Path(__file__).resolve().parent.parent / "gen" / "project_template"
_RESERVED = {"accounts", "django", "django_ai_chat", "test", "tests", "manage"}


class NewProjectError(Exception):
    """The project cannot be created as asked; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `new` subcommand's arguments on `parser`."""
    parser.add_argument("name", help="project name: a Python identifier, e.g. my_app")
    parser.add_argument(
        "directory",
        nargs="?",
        help="where to create it (default: ./NAME); must be absent or empty",
    )
    add_chat_arguments(parser, NEW_PROJECT_OPTIONS)
    parser.add_argument(
        "--verbose", action="store_true", help="show the generator's diff and notices"
    )


def run(args: argparse.Namespace) -> int:
    """Create the project described by parsed `args`; returns the exit status."""
    try:
        target = create_project(
            args.name,
            Path(args.directory) if args.directory else None,
            provider=args.provider,
            domain=args.domain,
            route=args.route,
            live_component=args.live_component,
            verbose=args.verbose,
        )
    except NewProjectError as error:
        print(f"django-ai-chat new: {error}", file=sys.stderr)
        return 2
    print(_next_steps(target, args))
    return 0


def create_project(
    name: str,
    directory: Path | None = None,
    *,
    provider: str = "openai",
    domain: str = "chat",
    route: str = "/chat",
    live_component: bool = False,
    verbose: bool = False,
) -> Path:
    """Create a Django project with email log-in, then generate the chat into it.

    Args:
        name: The project package, a Python identifier (`my_app` → `my_app/settings.py`).
        directory: Where to create it; absent or empty. Default: `./<name>`.
        provider: `gen_chat --provider`.
        domain: `gen_chat --domain`, the chat's app label.
        route: `gen_chat --route`, also where log-in redirects to.
        live_component: Pass `--live-component` to `gen_chat`.
        verbose: Show the generator's output (its diff and notices); otherwise it is shown only
            when it fails.

    Returns:
        The project directory (holding `manage.py`).

    Raises:
        NewProjectError: A name or option is invalid, the directory is not empty, or the
            generator failed (its output is in the message).
    """
    _check_name(name)
    try:
        app_label = clean_app_label(domain)
        chat_route = clean_route(route)
        provider = clean_provider(provider)
    except GeneratorError as error:
        raise NewProjectError(str(error)) from None
    _check_domain(app_label, name)
    _check_route(route, chat_route)
    target = (directory or Path(name)).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NewProjectError(
            f"{str(target)!r} already exists and is not an empty directory; "
            "choose another name or directory."
        )
    api_key_env, extra = PROVIDERS[provider]
    context = {
        "project_name": name,
        "secret_key": secrets.token_urlsafe(40),
        "app_label": app_label,
        "route": chat_route,
        "provider": provider,
        "model": default_model(provider),
        "api_key_env": api_key_env,
        "extra": extra,
        "live_component": live_component,
        "version": __version__,
    }
    write_tree(render_project(context), target)
    (target / "manage.py").chmod(0o755)
    # `--api ai-sdk`: the project also serves the AI SDK's endpoints (a React front-end's).
    # `--extend admin`: the project has Django's admin, so the chat's models appear in it (ratings,
    # usage by user, share links) instead of being left for its owner to register.
    gen_args = ["gen", "--live", "--api", "ai-sdk", "--extend", "admin", "--yes"]
    gen_args += ["--provider", provider]
    gen_args += ["--domain", app_label]
    gen_args += ["--route", f"/{chat_route}"]
    if live_component:
        gen_args.append("--live-component")
    _run_in(target, name, [sys.executable, "-m", "django_ai_chat.cli", *gen_args], verbose=verbose)
    return target


def render_project(context: Mapping[str, Any]) -> dict[PurePosixPath, str]:
    """Render `gen/project_template/` with `context`; returns `{relative path: content}`.

    Same conventions as the app template: `*-tpl` files are Jinja with `[[ ]]` / `[% %]`, so
    Django template syntax passes through; other files are copied; path parts may hold
    `[[ project_name ]]`.
    """
    return render_tree(context, root=PROJECT_TEMPLATE)


def write_tree(files: Mapping[PurePosixPath, str], root: Path) -> None:
    """Write rendered files under `root`, creating directories."""
    for rel, content in files.items():
        path = root.joinpath(*rel.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def project_env(project_dir: Path, name: str) -> dict[str, str]:
    """The environment for `manage.py` in a project made by `new`.

    The caller's `DJANGO_SETTINGS_MODULE` (e.g. a test suite's) must not leak into it.
    """
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = f"{name}.settings"
    env.pop("PYTHONPATH", None)
    return env


def _run_in(project_dir: Path, name: str, command: list[str], *, verbose: bool) -> None:
    shown = "django-ai-chat " + " ".join(command[3:])
    print(f"Running: {shown}", flush=True)
    result = subprocess.run(
        command,
        cwd=project_dir,
        env=project_env(project_dir, name),
        capture_output=not verbose,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = "" if verbose else (result.stdout or "") + (result.stderr or "")
        raise NewProjectError(
            f"`{shown}` failed (exit {result.returncode}) in "
            f"{str(project_dir)!r}. {output.strip()}\nThe project files are in place: fix the "
            "cause and run that command again there."
        )


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise NewProjectError(
            f"{name!r} is not a valid project name: use a Python identifier such as 'my_app'."
        )
    if name in _RESERVED or importlib.util.find_spec(name) is not None:
        raise NewProjectError(
            f"{name!r} conflicts with the name of an existing Python module or of a generated "
            "app; choose another project name."
        )


def _check_domain(label: str, project_name: str) -> None:
    if label in {project_name, *_RESERVED}:
        raise NewProjectError(
            f"--domain {label!r} clashes with the project or its accounts app; choose another."
        )


def _check_route(route: str, cleaned: str) -> None:
    if not cleaned:
        raise NewProjectError(
            f"--route {route!r} is not a plain URL path below the site root; write it like "
            "'/chat' or '/support/chat'."
        )


def _next_steps(target: Path, args: argparse.Namespace) -> str:
    api_key_env = PROVIDERS[clean_provider(args.provider)][0]
    try:
        shown = target.relative_to(Path.cwd())
    except ValueError:
        shown = target
    key_line = (
        f"  export {api_key_env}=...          # or AI_CHAT_MODEL=demo: (offline demo model)\n"
        if api_key_env
        else "  # ollama: make sure `ollama serve` runs (AI_CHAT_OLLAMA_BASE_URL)\n"
    )
    component = (
        "Embed the chat component in any template:\n"
        f"  {{% load {args.domain}_tags %}}{{% {args.domain}_component %}}\n"
        if args.live_component
        else ""
    )
    return (
        f"\nCreated the project {args.name!r} in {shown}/ (accounts with email log-in + the "
        "chat).\nNext:\n"
        f"  cd {shown}\n"
        f"  export DATABASE_URL=postgres://USER:PASSWORD@localhost/{args.name}   # PostgreSQL\n"
        f"{key_line}"
        "  python manage.py migrate\n"
        "  python manage.py chat_dev             # web + job worker in one process\n"
        f"Then open http://127.0.0.1:8000/{args.route.strip('/')}/ and sign up.\n"
        f"{component}"
    )
