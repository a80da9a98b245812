"""The generator's one exception type."""

from __future__ import annotations


class GeneratorError(Exception):
    """A problem that stops the generator before it computes any change (bad options, no project).

    The message is printed as is: it names the culprit and says what to do.
    """
