"""Patcher of a URLconf: include an app's URLs in the literal `urlpatterns`."""

from __future__ import annotations

import libcst as cst
from libcst import matchers as m
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from django_ai_chat.gen.patch import _cst


def _literal_patterns(module: cst.Module) -> cst.List | None:
    statements = _cst.assignments(module, "urlpatterns")
    if len(statements) != 1 or not isinstance(statements[0], cst.Assign):
        return None
    value = statements[0].value
    # `[...] + static(...)` / `[...] + debug_toolbar_urls()` are common: patch the literal part.
    while isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        value = value.left
    if not isinstance(value, cst.List):
        return None
    if len(m.findall(module, m.Name("urlpatterns"))) != 1:
        return None  # urlpatterns is also changed elsewhere (`urlpatterns += ...`, `.append`)
    return value


def mentions(source: str, text: str) -> bool:
    """Whether a string literal in `source` equals `text` (e.g. an app's `"chat.urls"`)."""
    module = _cst.parse(source)
    if module is None:
        return False
    return any(
        isinstance(node, cst.SimpleString) and node.evaluated_value == text
        for node in m.findall(module, m.SimpleString())
    )


def include_new(source: str, route: str, urlconf: str) -> str | None:
    """Append `path("<route>/", include("<urlconf>"))` to `urlpatterns` unless it is included.

    Args:
        source: The URLconf module's source.
        route: URL prefix without slashes (`""` for the site root).
        urlconf: Dotted module to include, e.g. `"chat.urls"`.

    Returns:
        The new source (unchanged when `urlconf` is already mentioned), or `None` when
        `urlpatterns` is not one literal list assigned once at module level.
    """
    if mentions(source, urlconf):
        return source
    module = _cst.parse(source)
    if module is None:
        return None
    node = _literal_patterns(module)
    if node is None:
        return None
    quote = _cst.quote_of(module)
    call = cst.Call(
        func=cst.Name("path"),
        args=[
            cst.Arg(_cst.string(f"{route}/" if route else "", quote)),
            cst.Arg(
                cst.Call(func=cst.Name("include"), args=[cst.Arg(_cst.string(urlconf, quote))])
            ),
        ],
    )
    module = module.deep_replace(node, _cst.extend_sequence(node, [call]))  # type: ignore[assignment]
    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, "django.urls", "include")
    AddImportsVisitor.add_needed_import(context, "django.urls", "path")
    return AddImportsVisitor(context).transform_module(module).code
