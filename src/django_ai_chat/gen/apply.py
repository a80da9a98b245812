"""Apply a `Project`: report, diff, confirm, write, run the queued tasks, print the notices.

Exit codes (Igniter's): 0 done or in sync, 1 would change files (`--check`) or aborted,
2 warnings (`--check`), 3 issues (nothing written).
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django_ai_chat.gen.project import FileChange, Project

IN_SYNC, CHANGES, WARNINGS, ISSUES = 0, 1, 2, 3

_MINIFIED = 1000
"""A new file with a line longer than this is shown by its size only."""

_COLOURS = {"+": "32", "-": "31", "@": "36", "create": "32", "update": "33", "conflict": "31"}


class Output(Protocol):
    """Where the report goes: a text stream (`sys.stdout`, a management command's `stdout`)."""

    def write(self, text: str, /) -> Any: ...  # noqa: D102

    def isatty(self) -> bool: ...  # noqa: D102


@dataclass(frozen=True, kw_only=True)
class Mode:
    """How to apply: the `--yes`, `--dry-run` and `--check` flags."""

    yes: bool = False
    dry_run: bool = False
    check: bool = False


class _Printer:
    def __init__(self, out: Output) -> None:
        self.out = out
        self.colour = out.isatty()

    def line(self, text: str = "", colour: str | None = None) -> None:
        if self.colour and colour:
            text = f"\033[{colour}m{text}\033[0m"
        self.out.write(text + "\n")

    def diff(self, change: FileChange) -> None:
        if change.before is None and any(
            len(line) > _MINIFIED for line in change.after.splitlines()
        ):
            # Vendored or compiled assets (one-line CSS/JS) would drown the diff.
            self.line(
                f"+++ b/{change.path} ({len(change.after.encode())} bytes, minified: not shown)"
            )
            return
        before = (change.before or "").splitlines(keepends=True)
        after = change.after.splitlines(keepends=True)
        if change.status == "conflict":
            # Show what the generator would turn the user's version into.
            names = (f"{change.path} (yours)", f"{change.path} (generated)")
        else:
            names = (
                f"a/{change.path}" if change.before is not None else "/dev/null",
                f"b/{change.path}",
            )
        for line in difflib.unified_diff(before, after, *names):
            text = line.rstrip("\n")
            self.line(text, _COLOURS.get(text[:1]) if not text.startswith(("+++", "---")) else None)
            if not line.endswith("\n"):
                self.line("\\ No newline at end of file")


def apply(
    project: Project,
    mode: Mode,
    *,
    out: Output = sys.stdout,
    confirm: Callable[[str], bool] | None = None,
) -> int:
    """Show the change set, then write it (unless `--dry-run`/`--check`); returns the exit code."""
    p = _Printer(out)
    for path, change in sorted(project.files.items()):
        p.line(f"  {change.status:<10} {path}", _COLOURS.get(change.status))
    shown = [c for c in project.files.values() if c.status == "update"]
    if mode.dry_run:
        shown += [c for c in project.files.values() if c.status in ("create", "conflict")]
    for change in sorted(shown, key=lambda c: c.path):
        p.line()
        p.diff(change)
    for task in project.tasks if mode.dry_run or mode.check else ():
        p.line(f"\nwould run: python manage.py {' '.join(task.args)}")
    for warning in project.warnings:
        p.line(f"\nwarning: {warning}", "33")
    for issue in project.issues:
        p.line(f"\nissue: {issue}", "31")
    if project.issues:
        p.line("\nNothing written: resolve the issues above and run again.")
        return ISSUES
    if mode.check:
        return _check(project, p)
    if mode.dry_run:
        p.line(f"\nDry run: {len(project.changed)} file(s) would change; nothing written.")
        return IN_SYNC
    if not project.changed and not project.tasks:
        p.line("\nNothing to change: the project is in sync.")
    else:
        if not mode.yes and not (confirm or _ask)("Write these changes? [Y/n] "):
            p.line("Aborted: nothing written.")
            return CHANGES
        _write(project, p)
        if not _run_tasks(project, p):
            return CHANGES
    for notice in project.notices:
        p.line()
        p.line(notice)
    return IN_SYNC


def _check(project: Project, p: _Printer) -> int:
    if project.changed or project.tasks:
        p.line(f"\nOut of sync: {len(project.changed)} file(s) would change.")
        return CHANGES
    if project.warnings:
        p.line("\nIn sync, with warnings.")
        return WARNINGS
    p.line("\nIn sync.")
    return IN_SYNC


def _ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        sys.stdout.write("Not a terminal: pass --yes to write without confirmation.\n")
        return False
    return input(prompt).strip().lower() in ("", "y", "yes")


def _write(project: Project, p: _Printer) -> None:
    for change in project.changed:
        path = project.root / change.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(change.after)
    p.line(f"\nWrote {len(project.changed)} file(s).")


def _run_tasks(project: Project, p: _Printer) -> bool:
    for task in project.tasks:
        command = ["python", "manage.py", *task.args]
        p.line(f"\nRunning: {' '.join(command)}")
        done = subprocess.run(
            [sys.executable, *command[1:]],
            cwd=project.root,
            capture_output=True,
            text=True,
            check=False,
        )
        for line in (done.stdout + done.stderr).splitlines():
            p.line(f"    {line}".rstrip())
        if done.returncode != 0:
            p.line(
                f"\nerror: `{' '.join(command)}` failed (exit {done.returncode}); the files are "
                "written. Fix the error above and run that command yourself.",
                "31",
            )
            return False
    return True
