"""Patchers of a project's dependency list: `pyproject.toml` or a `requirements*.txt`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from tomlkit.items import Array

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(requirement: str) -> str | None:
    match = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def _missing(present: Sequence[str], wanted: Sequence[str]) -> list[str]:
    names = {_canonical(r) for r in present}
    return [r for r in wanted if _canonical(r) not in names]


def add_pyproject_dependencies_new(source: str, requirements: Sequence[str]) -> str | None:
    """Add the `requirements` whose package is not yet in `[project].dependencies`.

    Returns:
        The new text (formatting and comments kept), or `None` when the file has no literal
        `[project].dependencies` array (e.g. Poetry's `[tool.poetry.dependencies]`).
    """
    try:
        document = tomlkit.parse(source)
    except tomlkit.exceptions.ParseError:
        return None
    project: Any = document.get("project")
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(dependencies, Array):
        return None
    missing = _missing([str(d) for d in dependencies], requirements)
    if not missing:
        return source
    for requirement in missing:
        dependencies.append(requirement)
    return tomlkit.dumps(document)


def add_requirements_new(source: str, requirements: Sequence[str]) -> str:
    """Append one line per requirement whose package is not yet listed in a requirements file."""
    lines = [line.split("#", 1)[0].strip() for line in source.splitlines()]
    missing = _missing([line for line in lines if line and not line.startswith("-")], requirements)
    if not missing:
        return source
    head = source if not source or source.endswith("\n") else source + "\n"
    return head + "".join(f"{r}\n" for r in missing)


def pyproject_requirements(source: str) -> list[str]:
    """The `[project].dependencies` of a `pyproject.toml` (none when it does not parse)."""
    try:
        document = tomlkit.parse(source)
    except tomlkit.exceptions.ParseError:
        return []
    project: Any = document.get("project")
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    return [str(d) for d in dependencies] if isinstance(dependencies, Array) else []


def requirements_lines(source: str) -> list[str]:
    """The requirement lines of a requirements file (no comments, options or includes)."""
    lines = [line.split(" #", 1)[0].split("\t#", 1)[0].strip() for line in source.splitlines()]
    return [line for line in lines if line and not line.startswith(("-", "#"))]


def conflicting(requirements: Sequence[str], name: str, supported: str) -> list[str]:
    """The requirements of package `name` that no version in `supported` satisfies.

    Tried: the boundary versions of both specifier sets, and a patch release past each (so
    `Django==5.1.2` against `>=5.2` conflicts, `Django>=5.2,<6.1` and `django==5.2.8` do not).
    """
    wanted = SpecifierSet(supported)
    out = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _canonical(requirement.name) != _canonical(name) or not requirement.specifier:
            continue
        versions = {s.version.replace("*", "0") for s in (*requirement.specifier, *wanted)}
        versions |= {f"{v}.99" for v in list(versions)}
        versions |= {"5.2", "6.0", "6.1", "7.0"}
        if not any(
            requirement.specifier.contains(v, prereleases=True) and wanted.contains(v)
            for v in versions
            if _is_version(v)
        ):
            out.append(line)
    return out


def _is_version(text: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
