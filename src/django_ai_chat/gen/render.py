"""Renders `app_template/` into file contents, in memory.

Files ending in `-tpl` are Jinja templates with bracket delimiters (`[[ var ]]`, `[% tag %]`,
`[# comment #]`) so that Django template syntax (`{{ }}`, `{% %}`) in generated HTML passes
through untouched; the `-tpl` suffix is dropped. Other files are copied byte for byte. Path parts
may contain `[[ app_label ]]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import jinja2

APP_TEMPLATE = Path(__file__).parent / "app_template"
_SUFFIX = "-tpl"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(APP_TEMPLATE),
    block_start_string="[%",
    block_end_string="%]",
    variable_start_string="[[",
    variable_end_string="]]",
    comment_start_string="[#",
    comment_end_string="#]",
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)


class RenderedFile(NamedTuple):
    """One output file of `render_files`."""

    content: str
    templated: bool
    """Rendered from a `*-tpl` template (code the user owns and edits), not copied verbatim."""


def render_tree(context: Mapping[str, Any], root: Path = APP_TEMPLATE) -> dict[PurePosixPath, str]:
    """Render every file under `root`; returns `{relative output path: content}`, sorted.

    Files whose rendered content is empty (a template wrapped in a false `[% if %]`) are left
    out, so options can switch whole files off; an empty `__init__.py` is kept exactly when its
    package keeps other files.
    """
    return {path: file.content for path, file in render_files(context, root).items()}


def render_files(
    context: Mapping[str, Any], root: Path = APP_TEMPLATE
) -> dict[PurePosixPath, RenderedFile]:
    """`render_tree`, telling rendered templates from verbatim copies (static assets)."""
    env = _env if root == APP_TEMPLATE else _env.overlay(loader=jinja2.FileSystemLoader(root))
    out: dict[PurePosixPath, RenderedFile] = {}
    empty_inits: list[PurePosixPath] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if "__pycache__" in rel.parts:
            continue
        target = PurePosixPath(env.from_string(str(rel)).render(context))
        if rel.name.endswith(_SUFFIX):
            content = env.get_template(str(rel)).render(context)
            target = target.with_name(target.name.removesuffix(_SUFFIX))
            if not content.strip():
                if target.name == "__init__.py":
                    empty_inits.append(target)
                continue
            out[target] = RenderedFile(content, templated=True)
        else:
            out[target] = RenderedFile(path.read_text(), templated=False)
    for init in empty_inits:
        if any(init.parent in path.parents for path in out):
            out[init] = RenderedFile("", templated=True)
    return dict(sorted(out.items()))


SNIPPETS = Path(__file__).parent / "snippets"

_snippet_env = _env.overlay(loader=jinja2.FileSystemLoader(SNIPPETS))


def render_snippet(name: str, context: Mapping[str, Any]) -> str:
    """Render `snippets/<name>` (settings blocks and notice texts), without surrounding blanks."""
    return _snippet_env.get_template(name).render(context).strip("\n")
