"""`django-ai-chat gen`: generate the chat app into the Django project in this directory.

Generates a complete AI chat into an existing Django project: models, actions, jobs, responder,
tools, views, templates, worker command and tests in a new app, plus the settings, URLconf and
dependency changes they need. Shows the changes, asks before writing (unless --yes), and is safe
to re-run: a re-run never changes a generated file; `--upgrade` brings them to this version,
merging your edits in. Works before
`django_ai_chat` is in INSTALLED_APPS (afterwards `python manage.py gen_chat` is the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django_ai_chat.gen.apply import ISSUES
from django_ai_chat.gen.command import EPILOG, add_arguments
from django_ai_chat.gen.command import run as run_generator
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.target import find_root, setup_django

__all__ = ["EPILOG", "add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    """Find `manage.py`, configure Django as it would, and run the generator."""
    try:
        root = find_root(Path.cwd())
        setup_django(root, app_labels=(str(getattr(args, "domain", "chat")).strip(),))
    except GeneratorError as error:
        sys.stderr.write(f"error: {error}\n")
        return ISSUES
    return run_generator(args, root=root)
