"""docs/architecture.md's package tree shows the folders that exist, each with what lives there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "django_ai_chat"
# One entry: the tree drawing, a folder path ending in "/", then what it holds.
_ENTRY = re.compile(r"^(?P<indent>(?:│   |    )*)[├└]── (?P<path>\S+/)(?:\s+(?P<what>\S.*))?$")


def _tree_block() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"```\nsrc/django_ai_chat/\n(?P<body>.*?)```", text, re.S)
    assert match, "docs/architecture.md has no ``` block starting with src/django_ai_chat/"
    return match["body"].splitlines()


def _listed() -> dict[str, str]:
    """Each folder the block names, relative to the package (`a/b/` lists a and a/b) -> what."""
    listed: dict[str, str] = {}
    parents: list[str] = []  # the path at each indentation level
    for line in _tree_block():
        entry = _ENTRY.match(line)
        assert entry, f"not a tree entry: {line!r}"
        depth = len(entry["indent"]) // 4
        parents = parents[:depth]
        path = "/".join([*parents, entry["path"].rstrip("/")])
        assert entry["what"], f"{path}/ says nothing about what lives there"
        parts = path.split("/")
        for end in range(1, len(parts) + 1):
            listed.setdefault("/".join(parts[:end]), "")
        listed[path] = entry["what"]
        parents.append(path)
    return listed


def _subfolders(relative: str) -> set[str]:
    folder = PACKAGE / relative if relative else PACKAGE
    return {
        f"{relative}/{child.name}".lstrip("/")
        for child in folder.iterdir()
        if child.is_dir() and _holds_files(child)
    }


def _holds_files(folder: Path) -> bool:
    # A folder git no longer tracks can linger with only bytecode in it after a move.
    return any(
        path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc")
        for path in folder.rglob("*")
    )


def test_every_folder_in_the_tree_exists() -> None:
    missing = sorted(path for path in _listed() if not (PACKAGE / path).is_dir())
    assert not missing, f"docs/architecture.md lists folders that do not exist: {missing}"


def test_a_folder_in_the_tree_shows_all_of_its_subfolders_or_none() -> None:
    # The package's own subfolders are all shown; deeper, a folder whose children the tree draws
    # must draw every one of them (a folder added beside them would otherwise go unmentioned).
    listed = set(_listed())
    for parent in ["", *sorted(listed)]:
        real = _subfolders(parent)
        shown = {path for path in listed if path.rpartition("/")[0] == parent}
        if parent and not shown:
            continue
        assert shown == real, (
            f"docs/architecture.md's tree under src/django_ai_chat/{parent}: "
            f"missing {sorted(real - shown)}, not a folder there {sorted(shown - real)}"
        )
