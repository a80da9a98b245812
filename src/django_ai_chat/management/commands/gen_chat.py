"""`manage.py gen_chat`: the generator, for projects that already install `django_ai_chat`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_ai_chat.cli import gen as command
from django_ai_chat.gen.target import find_root


class Command(BaseCommand):
    """Generate the chat app; the options and the engine are `django-ai-chat gen`'s."""

    help = command.DESCRIPTION
    # The generator must run on projects that do not pass the checks yet (e.g. on SQLite).
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Keep the examples' line breaks in `--help`."""
        kwargs.setdefault("epilog", command.EPILOG)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        """The generator's options (`django_ai_chat.gen.options.add_arguments`)."""
        command.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the generator in the project that holds `manage.py`; exit with its code."""
        script = Path(sys.argv[0])
        root = script.resolve().parent if script.name == "manage.py" else find_root(Path.cwd())
        code = command.generate(argparse.Namespace(**options), root=root, out=self.stdout)
        if code:
            raise SystemExit(code)
