"""Patchers of a settings module: list settings (`INSTALLED_APPS`, `MIDDLEWARE`) and new names.

Only a settings file that assigns the setting once, at module level, to a literal list or tuple
of strings, and never augments it, is edited. Anything else returns `None`.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
from libcst import matchers as m

from django_ai_chat.gen.patch import _cst


def _literal_sequence(module: cst.Module, name: str) -> cst.List | cst.Tuple | None:
    statements = _cst.assignments(module, name)
    if len(statements) != 1 or not isinstance(statements[0], cst.Assign):
        return None
    value = statements[0].value
    if not isinstance(value, cst.List | cst.Tuple) or _cst.strings_of(value) is None:
        return None
    # An assignment nested in `if`/`try` as well would make the literal one incomplete.
    if sum(1 for _ in _all_assignments(module, name)) != 1:
        return None
    return value


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
    source: str, name: str, values: Sequence[str], *, first: bool = False
) -> str | None:
    """Add the `values` missing from the literal `name = [...]` (at the end, or the start).

    Args:
        source: The settings module's source.
        name: The setting, e.g. `"INSTALLED_APPS"`.
        values: Strings to add, in order; those already present are skipped.
        first: Prepend instead of append (e.g. `daphne`, which must come first).

    Returns:
        The new source (the same text when nothing was missing), or `None` when `name` is not a
        single literal list or tuple of strings at module level.
    """
    module = _cst.parse(source)
    if module is None:
        return None
    node = _literal_sequence(module, name)
    if node is None:
        return None
    present = set(_cst.strings_of(node) or [])
    missing = [v for v in dict.fromkeys(values) if v not in present]
    if not missing:
        return source
    quote = _cst.quote_of(module)
    new = _cst.extend_sequence(node, [_cst.string(v, quote) for v in missing], first=first)
    return module.deep_replace(node, new).code  # type: ignore[union-attr]


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
