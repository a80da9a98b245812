"""Root conftest: the guard that keeps every test away from real LLM providers, and the browser
tests left to a pytest process of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["django_ai_chat.testing.pytest_plugin"]

BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave `tests/browser` out unless it (or something in it) is named on the command line.

    Playwright's sync API keeps its event loop marked as running in the main thread for the
    whole session, so every asyncio test after it would fail ("Runner.run() cannot be called
    from a running event loop"): `bin/test` runs the browser tests in a process of their own.
    """
    if collection_path != BROWSER_TESTS:
        return None
    for arg in config.args:
        named = Path(arg.split("::", 1)[0]).resolve()
        if named == BROWSER_TESTS or BROWSER_TESTS in named.parents:
            return None
    return True
