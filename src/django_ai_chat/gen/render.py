"""Renders `app_template/` into file contents, in memory.

Files ending in `-tpl` are Jinja templates with bracket delimiters (`[[ var ]]`, `[% tag %]`,
`[# comment #]`) so that Django template syntax (`{{ }}`, `{% %}`) in generated HTML passes
through untouched; the `-tpl` suffix is dropped. Other files are copied byte for byte. Path parts
may contain `[[ app_label ]]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

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


def render_tree(context: Mapping[str, Any], root: Path = APP_TEMPLATE) -> dict[PurePosixPath, str]:
    """Render every file under `root`; returns `{relative output path: content}`, sorted.

    Files whose rendered content is empty (a template wrapped in a false `[% if %]`) are left
    out, so options can switch whole files off; an empty `__init__.py` is kept exactly when its
    package keeps other files.
    """
    env = _env if root == APP_TEMPLATE else _env.overlay(loader=jinja2.FileSystemLoader(root))
    out: dict[PurePosixPath, str] = {}
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
        else:
            content = path.read_text()
        out[target] = content
    for init in empty_inits:
        if any(init.parent in path.parents for path in out):
            out[init] = ""
    return dict(sorted(out.items()))


SNIPPETS = Path(__file__).parent / "snippets"

_snippet_env = _env.overlay(loader=jinja2.FileSystemLoader(SNIPPETS))


def render_snippet(name: str, context: Mapping[str, Any]) -> str:
    """Render `snippets/<name>` (settings blocks and notice texts), without surrounding blanks."""
    return _snippet_env.get_template(name).render(context).strip("\n")
