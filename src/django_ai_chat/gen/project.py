"""`Project`: everything one generator run wants to do, accumulated in memory before any write.

Files to create or update carry a status word (`create`, `identical`, `update`, `conflict`,
`skip`). Three feedback channels: *issues* block the write, *warnings* are shown but do not
block, *notices* are the checklist printed at the end. *Tasks* are commands run after the write
(e.g. `makemigrations`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

Status = Literal["create", "identical", "update", "conflict", "skip"]


@dataclass(frozen=True)
class FileChange:
    """One file of the change set: its content on disk (`None`: absent) and the wanted content."""

    path: PurePosixPath
    before: str | None
    after: str
    status: Status

    @property
    def writes(self) -> bool:
        """Whether applying the change set writes this file."""
        return self.status in ("create", "update")


@dataclass(frozen=True)
class Task:
    """A command run in the project directory after the files are written."""

    args: tuple[str, ...]
    """Arguments after `python manage.py`."""


@dataclass
class Project:
    """The in-memory change set of one run against the project rooted at `root`."""

    root: Path
    files: dict[PurePosixPath, FileChange] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    def read(self, path: PurePosixPath) -> str | None:
        """The current content of `path`: pending changes first, then the disk (`None`: absent)."""
        if path in self.files:
            return self.files[path].after
        disk = self.root / path
        return disk.read_text() if disk.is_file() else None

    def create_file(self, path: PurePosixPath, content: str) -> FileChange:
        """Create `path`; an existing file with other content is a `conflict` and is kept as is.

        Generated files are their owner's to edit (the system prompt in `responder.py`, say), so
        an edited file is neither overwritten nor a warning: `--check` stays green in the user's
        CI. A notice names it, and `--dry-run` shows what the generator would write.
        """
        before = self.read(path)
        status: Status
        if before is None:
            status = "create"
        elif before == content:
            status = "identical"
        else:
            status = "conflict"
            self.add_notice(
                f"{path} differs from what the generator writes: kept yours "
                "(`--dry-run` shows the difference)."
            )
        return self._record(FileChange(path, before, content, status))

    def update_file(self, path: PurePosixPath, patch: Callable[[str], str | None]) -> FileChange:
        """Apply `patch` to the current content of an existing `path`.

        `patch` returns the new content, or `None` when it does not recognise the file; the file
        is then left alone (`skip`) and the patcher is expected to add a notice.
        """
        before = self.read(path)
        if before is None:
            return self._record(FileChange(path, None, "", "skip"))
        after = patch(before)
        if after is None:
            return self._record(FileChange(path, before, before, "skip"))
        status: Status = "identical" if after == before else "update"
        return self._record(FileChange(path, before, after, status))

    def _record(self, change: FileChange) -> FileChange:
        previous = self.files.get(change.path)
        if previous is not None and previous.before != change.before:
            if change.status == "skip":
                # The earlier edits stay in the set, but the caller must learn that this patch
                # did not apply: it owes the user a notice.
                return change
            # A second update of a file already in the set: keep the original disk content so
            # the status and the diff describe the whole run.
            status: Status = "identical" if previous.before == change.after else "update"
            change = FileChange(change.path, previous.before, change.after, status)
        self.files[change.path] = change
        return change

    def add_issue(self, text: str) -> None:
        """Record a problem that prevents writing anything."""
        self.issues.append(text)

    def add_warning(self, text: str) -> None:
        """Record a problem shown to the user; the write still happens."""
        self.warnings.append(text)

    def add_notice(self, text: str) -> None:
        """Record a step for the post-run checklist."""
        if text not in self.notices:
            self.notices.append(text)

    def add_task(self, *args: str) -> None:
        """Queue `python manage.py <args>` to run after the write."""
        task = Task(tuple(args))
        if task not in self.tasks:
            self.tasks.append(task)

    @property
    def changed(self) -> list[FileChange]:
        """Files the write would create or update, sorted by path."""
        return [c for _, c in sorted(self.files.items()) if c.writes]
