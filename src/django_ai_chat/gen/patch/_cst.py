"""libcst helpers shared by the patchers: module-level lookups, quote style, sequence edits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst
from libcst import matchers as m

_Seq = cst.List | cst.Tuple


def parse(source: str) -> cst.Module | None:
    """The module, or `None` when `source` is not valid Python (then nothing is patched)."""
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError:
        return None


def quote_of(module: cst.Module) -> str:
    """The quote character most string literals of `module` use (`"` when tied or none)."""
    counts = {"'": 0, '"': 0}
    for node in m.findall(module, m.SimpleString()):
        assert isinstance(node, cst.SimpleString)
        quote = node.quote[-1]
        if len(node.quote) == 1:
            counts[quote] += 1
    return "'" if counts["'"] > counts['"'] else '"'


def string(value: str, quote: str) -> cst.SimpleString:
    """A string literal of `value` in the given quote style (falls back when it contains it)."""
    if quote in value or "\\" in value:
        return cst.SimpleString(repr(value))
    return cst.SimpleString(f"{quote}{value}{quote}")


class _Requote(cst.CSTTransformer):
    def __init__(self, quote: str) -> None:
        super().__init__()
        self.quote = quote

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString
    ) -> cst.SimpleString:
        if updated_node.prefix or len(updated_node.quote) != 1:
            return updated_node
        value = updated_node.evaluated_value
        if not isinstance(value, str):
            return updated_node
        return string(value, self.quote)


def requote(code: str, quote: str) -> str:
    """`code` with its plain string literals in the given quote style."""
    return cst.parse_module(code).visit(_Requote(quote)).code


def _targets(statement: cst.CSTNode) -> Iterator[tuple[str, cst.BaseSmallStatement]]:
    if not isinstance(statement, cst.SimpleStatementLine):
        return
    for small in statement.body:
        if isinstance(small, cst.Assign):
            for target in small.targets:
                if isinstance(target.target, cst.Name):
                    yield target.target.value, small
        elif isinstance(small, cst.AnnAssign | cst.AugAssign) and isinstance(
            small.target, cst.Name
        ):
            yield small.target.value, small


def assignments(module: cst.Module, name: str) -> list[cst.BaseSmallStatement]:
    """Module-level statements that assign to or augment `name`."""
    return [small for stmt in module.body for target, small in _targets(stmt) if target == name]


def is_assigned(module: cst.Module, name: str) -> bool:
    """Whether `name` is assigned anywhere at module level (including inside `if`/`try`)."""
    return any(
        m.findall(
            module,
            m.Assign(targets=[m.ZeroOrMore(), m.AssignTarget(target=m.Name(name)), m.ZeroOrMore()])
            | m.AnnAssign(target=m.Name(name))
            | m.AugAssign(target=m.Name(name)),
        )
    )


def has_star_import(module: cst.Module) -> bool:
    """Whether `module` runs `from … import *` (names then come from elsewhere)."""
    return bool(m.findall(module, m.ImportFrom(names=m.ImportStar())))


def strings_of(node: cst.List | cst.Tuple) -> list[str] | None:
    """The values of a sequence made only of plain string literals, else `None`."""
    values: list[str] = []
    for element in node.elements:
        if not isinstance(element, cst.Element) or not isinstance(element.value, cst.SimpleString):
            return None
        value = element.value.evaluated_value
        if not isinstance(value, str):
            return None
        values.append(value)
    return values


def _is_multiline(node: cst.List | cst.Tuple) -> bool:
    return "\n" in cst.Module(body=[]).code_for_node(node)


def extend_sequence(
    node: _Seq, values: Sequence[cst.BaseExpression], *, first: bool = False
) -> _Seq:
    """`node` with `values` appended (or prepended), in the layout the sequence already has.

    A multi-line sequence gets one element per line with a trailing comma (a comment after the
    old last element stays with it); a one-line sequence stays on one line.
    """
    if not values:
        return node
    old: list[cst.BaseElement] = list(node.elements)
    items: list[cst.BaseElement] = [cst.Element(v) for v in values]
    if not old:
        return node.with_changes(elements=_join(items, _comma_space(), None))
    if not _is_multiline(node):
        elements = [*items, *old] if first else [*old, *items]
        return node.with_changes(elements=_join(elements, _comma_space(), None))
    between = _between_comma(old) or _comma_newline(node)
    if first:
        return node.with_changes(elements=[*_join(items, between, between), *old])
    last = old[-1].comma
    indent = between.whitespace_after
    assert isinstance(indent, cst.ParenthesizedWhitespace)
    if not isinstance(last, cst.Comma) or not isinstance(
        last.whitespace_after, cst.ParenthesizedWhitespace
    ):
        return _extend_before_closing(node, old, items, between, indent)
    ws = last.whitespace_after
    keep = last.with_changes(
        whitespace_after=ws.with_changes(last_line=indent.last_line, indent=indent.indent)
    )
    end = last.with_changes(
        whitespace_after=ws.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    )
    head = [*old[:-1], old[-1].with_changes(comma=keep)]
    return node.with_changes(elements=[*head, *_join(items, between, end)])


def insert_sequence(node: _Seq, index: int, value: cst.BaseExpression) -> _Seq:
    """`node` with `value` inserted before its element `index`, laid out like its neighbours."""
    old = list(node.elements)
    if index >= len(old):
        return extend_sequence(node, [value])
    if index == 0:
        return extend_sequence(node, [value], first=True)
    # The comment lines before element `index` stay with it: they describe it.
    before = old[index - 1]
    plain = _between_comma(old[: index + 1]) or _comma_space()
    comma = before.comma if isinstance(before.comma, cst.Comma) else plain
    head = [*old[: index - 1], before.with_changes(comma=plain)]
    return node.with_changes(elements=[*head, cst.Element(value, comma=comma), *old[index:]])


def _extend_before_closing(
    node: _Seq,
    old: list[cst.BaseElement],
    items: list[cst.BaseElement],
    between: cst.Comma,
    indent: cst.ParenthesizedWhitespace,
) -> _Seq:
    # The closing bracket owns the line break (and the comment after the old last element).
    closing = node.rbracket if isinstance(node, cst.List) else node.rpar[0]
    ws = closing.whitespace_before
    # The old elements keep their commas: those hold the comment lines between them.
    head = [*old[:-1], old[-1].with_changes(comma=between)]
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        # Hanging style (`'b']`): keep the bracket where it is, no trailing comma.
        return node.with_changes(elements=[*head, *_join(items, between, None)])
    if ws.first_line.comment is None:
        return node.with_changes(elements=[*head, *_join(items, between, cst.Comma())])
    last = old[-1].comma
    before = last.whitespace_after if isinstance(last, cst.Comma) else None
    spaces = cst.SimpleWhitespace(
        (before.value if isinstance(before, cst.SimpleWhitespace) else "")
        + ws.first_line.whitespace.value
    )
    keep = cst.Comma(
        whitespace_after=indent.with_changes(
            first_line=cst.TrailingWhitespace(whitespace=spaces, comment=ws.first_line.comment)
        )
    )
    closing = closing.with_changes(
        whitespace_before=ws.with_changes(first_line=cst.TrailingWhitespace())
    )
    elements = [*old[:-1], old[-1].with_changes(comma=keep), *_join(items, between, cst.Comma())]
    if isinstance(node, cst.List):
        return node.with_changes(elements=elements, rbracket=closing)
    return node.with_changes(elements=elements, rpar=[closing, *node.rpar[1:]])


def _join(
    elements: Sequence[cst.BaseElement], comma: cst.Comma, end: cst.Comma | None
) -> list[cst.BaseElement]:
    out: list[cst.BaseElement] = [e.with_changes(comma=comma) for e in elements[:-1]]
    last = elements[-1].with_changes(comma=end if end is not None else cst.MaybeSentinel.DEFAULT)
    return [*out, last]


def _comma_space() -> cst.Comma:
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _comma_newline(node: cst.List | cst.Tuple) -> cst.Comma:
    bracket = node.lbracket if isinstance(node, cst.List) else node.lpar[0]
    after = bracket.whitespace_after
    if isinstance(after, cst.ParenthesizedWhitespace):
        return cst.Comma(whitespace_after=after)
    return _comma_space()


def _between_comma(elements: Sequence[cst.BaseElement]) -> cst.Comma | None:
    commas = [e.comma for e in elements[:-1] if isinstance(e.comma, cst.Comma)]
    for comma in reversed(commas):
        ws = comma.whitespace_after
        if isinstance(ws, cst.ParenthesizedWhitespace) and ws.first_line.comment is None:
            # Comment lines before the next element belong to it, not to the layout.
            return comma.with_changes(whitespace_after=ws.with_changes(empty_lines=[]))
    return None


def add_from_import(module: cst.Module, package: str, names: Sequence[str]) -> cst.Module:
    """`module` with `from <package> import <names>` (merged into an existing one, else added).

    Written by hand rather than with libcst's `AddImportsVisitor`: once twisted (daphne) is
    imported, `abc.ABC` carries a zope `__provides__` descriptor that breaks libcst's
    matcher-decorated visitors.
    """
    body = list(module.body)
    imported = {
        alias.evaluated_name
        for node in m.findall(module, m.ImportFrom(relative=[]))
        if isinstance(node, cst.ImportFrom)
        and node.module is not None
        and cst.Module(body=[]).code_for_node(node.module) == package
        and not isinstance(node.names, cst.ImportStar)
        for alias in node.names
        if alias.asname is None
    }
    names = [n for n in names if n not in imported]
    if not names:
        return module
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if (
                isinstance(small, cst.ImportFrom)
                and not small.relative
                and small.module is not None
                and cst.Module(body=[]).code_for_node(small.module) == package
                and not isinstance(small.names, cst.ImportStar)
            ):
                have = {a.evaluated_name for a in small.names}
                missing = [n for n in names if n not in have]
                if not missing:
                    return module
                new = small.with_changes(names=_merge_aliases(small, missing))
                body[index] = statement.with_changes(
                    body=[new if s is small else s for s in statement.body]
                )
                return module.with_changes(body=body)
    statement = cst.parse_statement(f"from {package} import {', '.join(sorted(names))}\n")
    last = max(
        (
            i
            for i, stmt in enumerate(body)
            if m.matches(stmt, m.SimpleStatementLine(body=[m.Import() | m.ImportFrom()]))
        ),
        default=None,
    )
    if last is None:
        docstring = bool(body) and m.matches(
            body[0], m.SimpleStatementLine(body=[m.Expr(m.SimpleString())])
        )
        index = 1 if docstring else 0
    else:
        index = last + 1
    return module.with_changes(body=[*body[:index], statement, *body[index:]])


def _merge_aliases(node: cst.ImportFrom, missing: Sequence[str]) -> list[cst.ImportAlias]:
    assert not isinstance(node.names, cst.ImportStar)
    old = list(node.names)
    added = [cst.ImportAlias(cst.Name(n)) for n in missing]
    if node.lpar is None:
        # One line: sorted as isort would, unless an alias makes the order the author's.
        every = old + added
        if not any(a.asname for a in old):
            every = sorted(every, key=lambda a: a.evaluated_name)
        space = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        return [a.with_changes(comma=space) for a in every[:-1]] + [
            every[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        ]
    # Parenthesised: one more line each, laid out like the lines before.
    opening = node.lpar.whitespace_after
    between = next(
        (a.comma for a in reversed(old[:-1]) if isinstance(a.comma, cst.Comma)),
        cst.Comma(whitespace_after=opening)
        if isinstance(opening, cst.ParenthesizedWhitespace)
        else cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
    )
    trailing = old[-1].comma
    head = [*old[:-1], old[-1].with_changes(comma=between)]
    tail = [a.with_changes(comma=between) for a in added[:-1]]
    return [*head, *tail, added[-1].with_changes(comma=trailing)]
