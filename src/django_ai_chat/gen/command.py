"""The generator run both entry points share (`django-ai-chat gen`, `manage.py gen_chat`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django_ai_chat.gen.apply import ISSUES, Mode, Output, apply
from django_ai_chat.gen.chat import gen_chat
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.options import EXAMPLES, ChatOptions, add_arguments
from django_ai_chat.gen.project import Project
from django_ai_chat.gen.target import Target

__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "run"]

DESCRIPTION = """\
Generate a complete AI chat into an existing Django project: models, actions, jobs, responder,
tools, views, templates, worker command and tests in a new app, plus the settings, URLconf and
dependency changes it needs. Shows the changes, asks before writing (unless --yes) and is safe
to re-run: files you edited are kept and reported as conflicts."""
EPILOG = EXAMPLES


def run(ns: argparse.Namespace, *, root: Path, out: Output = sys.stdout) -> int:
    """Generate into the project at `root`, whose Django settings are already configured.

    Returns:
        The exit code (see `django_ai_chat.gen.apply`).
    """
    try:
        opts = ChatOptions.from_namespace(ns, root=root)
    except GeneratorError as error:
        sys.stderr.write(f"error: {error}\n")
        return ISSUES
    target = Target.from_django(root)
    out.write(_summary(opts) + "\n\n")
    project = gen_chat(Project(root), opts, target)
    return apply(project, Mode(yes=opts.yes, dry_run=opts.dry_run, check=opts.check), out=out)


def _summary(opts: ChatOptions) -> str:
    ui = [name for name, on in (("page", opts.live), ("component", opts.live_component)) if on]
    route = f"/{opts.route}/" if opts.route else "/"
    parts = [
        f"app {opts.app_label!r}",
        f"model {opts.model}",
        f"user {opts.user_model}" if opts.user_model else "no user model",
        f"UI: {' + '.join(ui)} at {route}" if ui else "no UI",
    ]
    if opts.extensions:
        parts.append(f"extensions: {', '.join(opts.extensions)}")
    return "django-ai-chat gen: " + ", ".join(parts)
