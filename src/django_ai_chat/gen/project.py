"""`Project`: everything one generator run wants to do, accumulated in memory before any write.

Files to create or update carry a status word: `create`, `identical`, `update`, `skip`, and for
generated files `outdated` (this version generates something else; kept, `--upgrade` changes
it), `edited` (yours, and this version has nothing new for it), `merge` (your edits merged into
the new output), `conflict` (merged with conflict markers) and `delete` (no longer generated,
unedited). Three feedback channels: *issues* block the write, *warnings* are shown but do not
block, *notices* are the checklist printed at the end. *Tasks* are commands run after the write
(e.g. `makemigrations`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from django_ai_chat.gen.manifest import Entry
from django_ai_chat.gen.merge import merge

Status = Literal[
    "create", "identical", "update", "merge", "conflict", "delete", "outdated", "edited", "skip"
]
WRITES: frozenset[Status] = frozenset({"create", "update", "merge", "conflict", "delete"})
"""The statuses whose files applying the change set writes (or deletes)."""


@dataclass(frozen=True)
class FileChange:
    """One file of the change set: its content on disk (`None`: absent) and the wanted content.

    For a kept file (`outdated`, `edited`) `after` is what the generator would write; for
    `delete` it is `""`.
    """

    path: PurePosixPath
    before: str | None
    after: str
    status: Status

    @property
    def writes(self) -> bool:
        """Whether applying the change set writes this file."""
        return self.status in WRITES


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
    pending: list[str] = field(default_factory=list)
    """`--check`: what keeps the chat from working in the running project (not file changes)."""

    def read(self, path: PurePosixPath) -> str | None:
        """The current content of `path`: pending changes first, then the disk (`None`: absent)."""
        if path in self.files:
            change = self.files[path]
            if change.status == "delete":
                return None
            return change.after if change.writes else change.before
        disk = self.root / path
        return disk.read_text() if disk.is_file() else None

    def create_file(
        self,
        path: PurePosixPath,
        content: str,
        *,
        record: Entry | None = None,
        upgrade: bool = False,
        label: str = "generated",
    ) -> FileChange:
        """Create the generated file `path`; an existing one is judged against its `record`.

        Generated files are their owner's to edit (the system prompt in `responder.py`, say), so
        an edited file is never overwritten: without `upgrade` it is kept (`edited`, or
        `outdated` when this version generates something new for it); with `upgrade` the new
        `content` is merged into it (base: `record.content`) and conflicts are marked inline
        (conflict markers labelled `label`). A file the user has not edited (its content matches
        `record`) is `outdated` without `upgrade`, replaced with it. Without a `record` (an app
        generated before manifests), every differing file counts as edited, with no base.
        """
        before = self.read(path)
        status: Status
        after = content
        if before is None:
            status = "create"
        elif before == content:
            status = "identical"
        elif record is not None and record.matches(before):
            status = "update" if upgrade else "outdated"
        elif record is not None and record.matches(content):
            status = "edited"
        elif not upgrade or (record is not None and record.content is None):
            # A verbatim copy (a vendored asset) is replaced whole or not at all.
            status = "outdated"
        else:
            merged = merge(record.content if record else None, before, content, theirs_label=label)
            after = merged.text
            status = "conflict" if merged.conflicts else "merge"
            if after == before:
                status = "edited"
        return self._record(FileChange(path, before, after, status))

    def remove_file(self, path: PurePosixPath, record: Entry) -> FileChange | None:
        """Delete `path`, no longer generated, unless the user edited it (`edited`, kept).

        Returns `None` when the file is already gone.
        """
        before = self.read(path)
        if before is None:
            return None
        status: Status = "delete" if record.matches(before) else "edited"
        return self._record(FileChange(path, before, "" if status == "delete" else before, status))

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

    def add_pending(self, text: str) -> None:
        """Record something the running project still lacks (`--check` fails on it)."""
        if text not in self.pending:
            self.pending.append(text)

    def add_task(self, *args: str) -> None:
        """Queue `python manage.py <args>` to run after the write."""
        task = Task(tuple(args))
        if task not in self.tasks:
            self.tasks.append(task)

    @property
    def changed(self) -> list[FileChange]:
        """Files the write would create or update, sorted by path."""
        return [c for _, c in sorted(self.files.items()) if c.writes]
