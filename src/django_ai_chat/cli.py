"""The `django-ai-chat` console script: one subcommand per module.

A subcommand module provides `HELP` (one line for the command list), `DESCRIPTION`, `EPILOG`,
`add_arguments(parser)` and `main(namespace) -> int` (the exit code). Add a command by adding
its module to `COMMANDS`; modules are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "gen": "django_ai_chat.gen.command",
}
"""Subcommand name → module implementing it."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from django_ai_chat import __version__

    parser = argparse.ArgumentParser(
        prog="django-ai-chat",
        description="A complete AI chat for Django projects.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, dotted in COMMANDS.items():
        module = importlib.import_module(dotted)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=module.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named in `argv` (default: `sys.argv[1:]`); returns its exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
