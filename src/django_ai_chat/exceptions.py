"""Exceptions raised by the runtime."""

from __future__ import annotations


class ConfigurationError(Exception):
    """The project is missing something the runtime needs (an API key, an extra, a setting)."""


class ToolError(Exception):
    """A tool failed in a way the model can act on; the message is sent back to the model."""
