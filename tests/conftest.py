"""Root conftest: only the guard that keeps every test away from real LLM providers."""

from __future__ import annotations

pytest_plugins = ["django_ai_chat.testing.pytest_plugin"]
