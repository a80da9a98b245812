"""Apply a `Project`: report, diff, confirm, write, run the queued tasks, print the notices.

Exit codes, in this order of precedence: 3 issues (nothing written); 1 `--check` found files
that would change, or the write was declined, or a task failed; 2 done (or in sync, or a dry
run) with warnings, e.g. generated files left out of date or conflict markers written; 0 done
or in sync.
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

_COLOURS = {
    "+": "32",
    "-": "31",
    "@": "36",
    "create": "32",
    "update": "33",
    "merge": "33",
    "outdated": "33",
    "conflict": "31",
    "delete": "31",
}


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
        shown = change.before if change.status == "delete" else change.after
        if (change.before is None or change.status == "delete") and any(
            len(line) > _MINIFIED for line in (shown or "").splitlines()
        ):
            # Vendored or compiled assets (one-line CSS/JS) would drown the diff.
            sign, side = ("---", "a") if change.status == "delete" else ("+++", "b")
            size = len((shown or "").encode())
            self.line(f"{sign} {side}/{change.path} ({size} bytes, minified: not shown)")
            return
        before = (change.before or "").splitlines(keepends=True)
        after = change.after.splitlines(keepends=True)
        if not change.writes:
            # A kept file: show what the generator would turn the user's version into.
            names = (f"{change.path} (yours)", f"{change.path} (generated)")
        else:
            names = (
                f"a/{change.path}" if change.before is not None else "/dev/null",
                f"b/{change.path}" if change.status != "delete" else "/dev/null",
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
    # Every change to an existing file is diffed; a dry run also shows new files and what the
    # generator would write over kept ones.
    diffed = {"update", "merge", "conflict", "delete"}
    if mode.dry_run:
        diffed |= {"create", "outdated", "edited"}
    shown = [c for c in project.files.values() if c.status in diffed]
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
        return WARNINGS if project.warnings else IN_SYNC
    if not project.changed and not project.tasks:
        in_sync = "see the warnings above" if project.warnings else "the project is in sync"
        p.line(f"\nNothing to change: {in_sync}.")
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
    return WARNINGS if project.warnings else IN_SYNC


def _check(project: Project, p: _Printer) -> int:
    if project.pending:
        # Judged on the running project: files in sync do not make a working chat.
        p.line("\nStill to do (the running project, as Django loads it):")
        for problem in project.pending:
            p.line(f"  - {problem}", "33")
    if project.changed or project.tasks:
        p.line(f"\nOut of sync: {len(project.changed)} file(s) would change.")
        return CHANGES
    if project.pending:
        p.line(f"\nNot in sync: {len(project.pending)} thing(s) still to do.")
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
        if change.status == "delete":
            path.unlink(missing_ok=True)
            continue
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
