"""Patcher of a URLconf: include an app's URLs in the literal `urlpatterns`."""

from __future__ import annotations

import re

import libcst as cst
from django.core.exceptions import ImproperlyConfigured
from django.urls.resolvers import RegexPattern, RoutePattern
from libcst import matchers as m

from django_ai_chat.gen.patch import _cst


def _literal_patterns(module: cst.Module) -> cst.List | None:
    """The literal list `urlpatterns` is defined with, when every other change only extends it."""
    name = "urlpatterns"
    definitions = [
        small
        for small in _cst.assignments(module, name)
        if isinstance(small, cst.Assign) and not m.findall(small.value, m.Name(name))
    ]
    if len(definitions) != 1:
        return None
    for node in m.findall(
        module,
        m.Assign(targets=[m.ZeroOrMore(), m.AssignTarget(target=m.Name(name)), m.ZeroOrMore()])
        | m.AugAssign(target=m.Name(name))
        | m.AnnAssign(target=m.Name(name)),
    ):
        if node is definitions[0]:
            continue
        # `urlpatterns += …`, `urlpatterns = urlpatterns + […]`, `[*urlpatterns, …]` add routes
        # after (or before) the literal; anything else rebinds it.
        extends = (
            isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign)
        ) or (isinstance(node, cst.Assign) and bool(m.findall(node.value, m.Name(name))))
        if not extends:
            return None
    value = definitions[0].value
    # `[...] + static(...)` / `[...] + debug_toolbar_urls()` are common: patch the literal part.
    while isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        value = value.left
    return value if isinstance(value, cst.List) else None


def _swallows(element: cst.BaseElement, prefix: str) -> bool:
    """Whether the route `element` would answer URLs under `prefix`, so routes after it never do.

    Judged the way Django resolves: `path("", include(…))` and any regex route whose pattern
    matches the prefix (a page router's `re_path(r"^(?P<path>.*)$", page)`, Wagtail's `r"^"`).
    """
    call = element.value
    if not isinstance(call, cst.Call) or not call.args:
        return False
    func = call.func
    name = func.value if isinstance(func, cst.Name) else getattr(func, "attr", None)
    name = name.value if isinstance(name, cst.Name) else name
    first = call.args[0].value
    if name not in ("path", "re_path") or not isinstance(first, cst.SimpleString):
        return False
    route = first.evaluated_value
    if not isinstance(route, str):
        return False
    is_include = len(call.args) > 1 and m.matches(
        call.args[1].value, m.Call(func=m.Name("include"))
    )
    pattern_class = RoutePattern if name == "path" else RegexPattern
    try:
        pattern = pattern_class(route, is_endpoint=not is_include)
        return pattern.match(prefix) is not None
    except (re.error, ImproperlyConfigured):
        return False


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
        `urlpatterns` is not defined by one literal list at module level that later lines only
        extend (`+=`, `urlpatterns = urlpatterns + […]`). The include goes before the first
        route of that list that would answer its URLs (a catch-all such as
        `path("", include(wagtail_urls))` or `re_path(r"^(?P<path>.*)$", page)`), so it can be
        reached.
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
    prefix = f"{route}/" if route else ""
    index = next(
        (i for i, e in enumerate(node.elements) if _swallows(e, prefix)), len(node.elements)
    )
    module = module.deep_replace(node, _cst.insert_sequence(node, index, call))  # type: ignore[assignment]
    return _cst.add_from_import(module, "django.urls", ["include", "path"]).code
