"""Pytest fixtures for projects using django-ai-chat.

Enable them in a root `conftest.py` with
`pytest_plugins = ["django_ai_chat.testing.pytest_plugin"]` (the older path
`django_ai_chat.pytest_plugin` works too), or import the fixtures by name into any `conftest.py`
(`from django_ai_chat.testing.pytest_plugin import no_real_llm_requests, scripted_llm`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_ai_chat.testing import (
    ScriptedLLM,
    block_real_llm_requests,
    register_model,
    unregister_model,
)


@pytest.fixture(autouse=True)
def no_real_llm_requests() -> Iterator[None]:
    """Every test: HTTP requests to non-loopback hosts fail with `RealLLMRequestBlocked`."""
    with block_real_llm_requests():
        yield


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A `ScriptedLLM` registered as `"test:scripted"` (add turns with `.add_turns(...)`)."""
    model = register_model("scripted", ScriptedLLM())
    try:
        yield model
    finally:
        unregister_model("scripted")
