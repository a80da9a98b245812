"""Patchers of a settings module: list settings (`INSTALLED_APPS`, `MIDDLEWARE`) and new names.

Only the shapes real projects use are edited (see `add_to_list_setting_new`); anything else
returns `None`. `star_imports` and `defines` let the caller find the file that defines a setting
behind `from .base import *`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import libcst as cst
from libcst import matchers as m

from django_ai_chat.gen.patch import _cst

Role = Literal["third_party", "local"]
"""Which part of a summed `INSTALLED_APPS` a value goes to (cookiecutter-django's shape)."""

_ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "third_party": ("THIRD", "EXTERNAL", "VENDOR", "PACKAGE", "LIBRAR"),
    "local": ("LOCAL", "PROJECT", "OWN", "CUSTOM", "MY_"),
}
_MUTATORS = ("append", "extend", "insert")
_Seq = cst.List | cst.Tuple


@dataclass(frozen=True)
class _Parts:
    """A list setting as literal parts: `[(variable or None, literal), ...]` in runtime order."""

    lists: list[tuple[str | None, _Seq]]
    present: set[str]


def _mentions(node: cst.CSTNode, name: str) -> bool:
    return bool(m.findall(node, m.Name(name)))


def _definitions(module: cst.Module, name: str) -> list[cst.Assign]:
    """Module-level `name = ...` statements that define `name` (do not extend its old value)."""
    return [
        small
        for small in _cst.assignments(module, name)
        if isinstance(small, cst.Assign) and not _mentions(small.value, name)
    ]


def defines(source: str, name: str) -> bool:
    """Whether `source` assigns `name` at module level from scratch (not `+=` or `[*name, …]`)."""
    module = _cst.parse(source)
    return module is not None and bool(_definitions(module, name))


def _augmented_strings(node: cst.BaseExpression, name: str) -> list[str] | None:
    """The strings `[*name, 'a']`/`['a', *name]` adds to `name`, else `None`."""
    if not isinstance(node, cst.List | cst.Tuple):
        return None
    values = []
    stars = 0
    for element in node.elements:
        if isinstance(element, cst.StarredElement) and m.matches(element.value, m.Name(name)):
            stars += 1
        elif isinstance(element, cst.Element) and isinstance(element.value, cst.SimpleString):
            value = element.value.evaluated_value
            if not isinstance(value, str):
                return None
            values.append(value)
        else:
            return None
    return values if stars == 1 else None


def _extensions(module: cst.Module, name: str, definition: cst.Assign) -> set[str] | None:
    """Strings added to `name` after its definition; `None` when `name` is rebound otherwise."""
    found: set[str] = set()
    for node in _all_assignments(module, name):
        if node is definition:
            continue
        values: list[str] | None = None
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
            if isinstance(node.value, cst.List | cst.Tuple):
                values = _cst.strings_of(node.value)
        elif isinstance(node, cst.Assign):
            values = _augmented_strings(node.value, name)
        if values is None:
            return None
        found.update(values)
    for call in m.findall(
        module,
        m.Call(func=m.Attribute(value=m.Name(name), attr=m.OneOf(*map(m.Name, _MUTATORS)))),
    ):
        assert isinstance(call, cst.Call)
        for arg in call.args:
            if isinstance(arg.value, cst.SimpleString):
                value = arg.value.evaluated_value
                if isinstance(value, str):
                    found.add(value)
            elif isinstance(arg.value, cst.List | cst.Tuple):
                found.update(_cst.strings_of(arg.value) or [])
    return found


def _parts(module: cst.Module, name: str, depth: int = 0) -> _Parts | None:
    definitions = _definitions(module, name)
    if len(definitions) != 1 or depth > 3:
        return None
    extensions = _extensions(module, name, definitions[0])
    if extensions is None:
        return None
    lists = _flatten(module, definitions[0].value, depth)
    if lists is None:
        return None
    present = {v for _, node in lists for v in _cst.strings_of(node) or []} | extensions
    return _Parts(lists, present)


def _flatten(
    module: cst.Module, value: cst.BaseExpression, depth: int
) -> list[tuple[str | None, _Seq]] | None:
    if isinstance(value, cst.List | cst.Tuple):
        return [(None, value)] if _cst.strings_of(value) is not None else None
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        left = _flatten(module, value.left, depth)
        right = _flatten(module, value.right, depth)
        return None if left is None or right is None else [*left, *right]
    if isinstance(value, cst.Name):
        parts = _parts(module, value.value, depth + 1)
        if parts is None:
            return None
        return [(variable or value.value, node) for variable, node in parts.lists]
    return None


def _pick(lists: list[tuple[str | None, _Seq]], role: Role) -> _Seq:
    for variable, node in lists:
        if variable and any(word in variable.upper() for word in _ROLE_WORDS[role]):
            return node
    return lists[-1][1]


def _all_assignments(module: cst.Module, name: str) -> list[cst.CSTNode]:
    return list(
        m.findall(
            module,
            m.Assign(targets=[m.ZeroOrMore(), m.AssignTarget(target=m.Name(name)), m.ZeroOrMore()])
            | m.AugAssign(target=m.Name(name))
            | m.AnnAssign(target=m.Name(name)),
        )
    )


def add_to_list_setting_new(
    source: str,
    name: str,
    values: Sequence[str],
    *,
    first: bool = False,
    role: Role = "third_party",
) -> str | None:
    """Add the `values` missing from the list setting `name` (at the end, or the start).

    Recognised: `name` defined once at module level as a literal list or tuple of strings, or as
    a sum of such literals and of module variables defined the same way (`DJANGO_APPS +
    THIRD_PARTY_APPS + LOCAL_APPS`), later extended only by literals (`+=`, `.append(…)`,
    `.extend(…)`, `.insert(…)`, `name = [*name, …]`).

    Args:
        source: The settings module's source.
        name: The setting, e.g. `"INSTALLED_APPS"`.
        values: Strings to add, in order; those already present are skipped.
        first: Prepend to the part that comes first (e.g. `daphne`, which must come first).
        role: Which part of a sum gets the values: the one named like third-party apps, or like
            the project's own (`LOCAL_APPS`); the last part when none is named so.

    Returns:
        The new source (the same text when nothing was missing), or `None` when `name` is not
        recognised.
    """
    module = _cst.parse(source)
    if module is None:
        return None
    parts = _parts(module, name)
    if parts is None:
        return None
    missing = [v for v in dict.fromkeys(values) if v not in parts.present]
    if not missing:
        return source
    node = parts.lists[0][1] if first else _pick(parts.lists, role)
    quote = _cst.quote_of(module)
    new = _cst.extend_sequence(node, [_cst.string(v, quote) for v in missing], first=first)
    return module.deep_replace(node, new).code  # type: ignore[union-attr]


def star_imports(source: str) -> list[tuple[int, str]]:
    """`from <module> import *` of `source` as `(relative level, dotted module)`, last first."""
    module = _cst.parse(source)
    if module is None:
        return []
    found = []
    for node in m.findall(module, m.ImportFrom(names=m.ImportStar())):
        assert isinstance(node, cst.ImportFrom)
        dotted = "" if node.module is None else cst.Module(body=[]).code_for_node(node.module)
        found.append((len(node.relative), dotted))
    return found[::-1]


def configure_new(source: str, name: str, code: str, *, imports: Sequence[str] = ()) -> str | None:
    """Append `code` (which assigns `name`) unless `name` is already assigned at module level.

    Args:
        source: The settings module's source.
        name: The setting `code` assigns.
        code: One or more statements, comments included, from a snippet template.
        imports: Modules `code` needs (`import <module>` is added when absent).

    Returns:
        The new source, or `None` when the module star-imports names from elsewhere (the
        setting may live there) or does not parse.
    """
    module = _cst.parse(source)
    if module is None or _cst.has_star_import(module):
        return None
    if _cst.is_assigned(module, name):
        return source
    snippet = _cst.requote(code.strip() + "\n", _cst.quote_of(module))
    module = cst.parse_module(module.code.rstrip("\n") + "\n\n" + snippet)
    for imported in imports:
        module = _import_new(module, imported)
    return module.code


def _import_new(module: cst.Module, name: str) -> cst.Module:
    """`module` with `import <name>` at the top of its imports (where isort would put it)."""
    if m.findall(
        module, m.Import(names=[m.ZeroOrMore(), m.ImportAlias(name=m.Name(name)), m.ZeroOrMore()])
    ):
        return module
    statement = cst.parse_statement(f"import {name}\n")
    body = list(module.body)
    index = next(
        (
            i
            for i, stmt in enumerate(body)
            if m.matches(stmt, m.SimpleStatementLine(body=[m.Import() | m.ImportFrom()]))
        ),
        None,
    )
    if index is None:
        index = (
            1
            if body and m.matches(body[0], m.SimpleStatementLine(body=[m.Expr(m.SimpleString())]))
            else 0
        )
        statement = statement.with_changes(leading_lines=[cst.EmptyLine()]) if index else statement
        return module.with_changes(body=[*body[:index], statement, *body[index:]])
    first = body[index]
    statement = statement.with_changes(leading_lines=first.leading_lines)
    body[index] = first.with_changes(leading_lines=[])
    return module.with_changes(body=[*body[:index], statement, *body[index:]])


def _prepending(module: cst.Module, name: str) -> cst.List | None:
    """The one `name = ['x', *name, …]` of `module`, when strings come before the star."""
    found = [
        small.value
        for small in _cst.assignments(module, name)
        if isinstance(small, cst.Assign)
        and isinstance(small.value, cst.List)
        and _augmented_strings(small.value, name) is not None
        and isinstance(small.value.elements[0], cst.Element)
    ]
    return found[0] if len(found) == 1 else None


def prepend_to_extension_new(source: str, name: str, value: str) -> str | None:
    """Put `value` first in a `name = ['x', *name]` that runs after `name` is defined elsewhere.

    Such a line (cookiecutter-django's `local.py` puts `whitenoise.runserver_nostatic` first
    this way) decides which app comes first at runtime, so `daphne` must go there.

    Returns:
        The new source (the same text when `value` is already first), or `None` when `source`
        has no such line, or defines `name` itself.
    """
    module = _cst.parse(source)
    if module is None or _definitions(module, name):
        return None
    node = _prepending(module, name)
    if node is None:
        return None
    head = node.elements[0]
    if isinstance(head, cst.Element) and m.matches(head.value, m.SimpleString()):
        assert isinstance(head.value, cst.SimpleString)
        if head.value.evaluated_value == value:
            return source
    new = _cst.extend_sequence(node, [_cst.string(value, _cst.quote_of(module))], first=True)
    return module.deep_replace(node, new).code  # type: ignore[union-attr]
