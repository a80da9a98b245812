"""Three-way merge of a generated file: the user's edits carried onto the new template output.

`merge3` (Breezy's diff3 algorithm as a library) does the work; conflicts are written inline with
git's markers, as `copier update` does by default, so an editor or `git mergetool` shows them.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

import merge3

YOURS = "yours"
"""The label of the user's side in conflict markers."""


class Merged(NamedTuple):
    """The merge result: the text to write and whether it holds conflict markers."""

    text: str
    conflicts: bool


def merge(base: str | None, ours: str, theirs: str, *, theirs_label: str) -> Merged:
    """Merge `ours` (the file on disk) and `theirs` (the new output) from their common `base`.

    Args:
        base: what the generator wrote last time; `None` when unknown (an app generated before
            the manifest existed): then every difference is a conflict, nothing is guessed.
        ours: the file on disk, with the user's edits.
        theirs: what the generator writes now.
        theirs_label: the label of the generator's side in conflict markers.
    """
    a, b = _lines(ours), _lines(theirs)
    if base is None:
        return _two_way(a, b, theirs_label)
    m = merge3.Merge3(_lines(base), a, b)
    conflicts = any(group[0] == "conflict" for group in m.merge_groups())
    text = "".join(m.merge_lines(name_a=YOURS, name_b=theirs_label))
    return Merged(text, conflicts)


def _two_way(a: list[str], b: list[str], theirs_label: str) -> Merged:
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += a[i1:i2]
        else:
            out += [f"<<<<<<< {YOURS}\n", *a[i1:i2], "=======\n", *b[j1:j2]]
            out.append(f">>>>>>> {theirs_label}\n")
    return Merged("".join(out), out != a)


def _lines(text: str) -> list[str]:
    # A last line without its newline would glue itself to a conflict marker.
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines
