"""Run the demo: a generated chat project on a throwaway PostgreSQL."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `demo` subcommand's arguments on `parser`."""


def run(args: argparse.Namespace) -> int:
    """Not written yet."""
    raise NotImplementedError
