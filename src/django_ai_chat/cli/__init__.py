"""The `django-ai-chat` console script: a thin dispatcher to the subcommands beside it.

Every command line of the package lives in `django_ai_chat.cli`: one module per subcommand
(`new`, `demo`, `gen`), each with a docstring (its first line is the subcommand's help),
`add_arguments(parser)` and `run(args) -> int` (the exit status; optionally `EPILOG`, text shown
after the options in `--help`); add one by adding its module path to `SUBCOMMANDS`. Django's
`manage.py gen_chat` and `chat_dev` stay in `management/commands/` (where Django looks for them)
as thin adapters onto this package.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from django_ai_chat import __version__

SUBCOMMANDS: dict[str, str] = {
    "new": "django_ai_chat.cli.new",
    "demo": "django_ai_chat.cli.demo",
    "gen": "django_ai_chat.cli.gen",
}
"""Subcommand name → module implementing it."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of `SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="django-ai-chat",
        description="A complete AI chat feature for Django projects.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_path in SUBCOMMANDS.items():
        module = importlib.import_module(module_path)
        doc = (module.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else ""
        summary = summary.split(": ", 1)[-1].rstrip(".")
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=doc,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`) and run the chosen subcommand."""
    args = build_parser().parse_args(argv)
    status: int = args._module.run(args)
    return status
