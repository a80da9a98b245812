"""Subcommands of the `django-ai-chat` console script, one module each.

Each module has a docstring (its first line is the subcommand's help), `add_arguments(parser)`
and `run(args) -> int` (the exit status). `django_ai_chat.cli.SUBCOMMANDS` lists them.
"""
