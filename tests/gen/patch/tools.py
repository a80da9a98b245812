"""django-upgrade's two helpers, plus Igniter's "apply twice, nothing changes"."""

from __future__ import annotations

import ast
from collections.abc import Callable
from textwrap import dedent

Patcher = Callable[[str], str | None]


def check_noop(patcher: Patcher, source: str, *, recognised: bool = True) -> None:
    """The patcher leaves `source` as it is (`recognised=False`: it declines with `None`)."""
    source = dedent(source)
    result = patcher(source)
    if recognised:
        assert result == source
    else:
        assert result is None


def check_transformed(patcher: Patcher, before: str, after: str) -> None:
    """The patcher turns `before` into exactly `after`, and `after` into itself."""
    before, after = dedent(before), dedent(after)
    ast.parse(after)
    assert patcher(before) == after
    assert patcher(after) == after
