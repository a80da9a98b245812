"""Tools the model may call, each running as the actor (the user the chat belongs to).

Contract used by the loop (see `django_ai_chat.loop`):

* `Tool` – name, description, JSON schema of the arguments, and `acall(arguments, actor)`.
* `registry` – the process-wide `ToolRegistry`; apps register tools from their `ai_tools.py`.
* `registry.for_actor(actor, tools)` – the tools this actor may use (`True` = all, or a list of
  names), each already checked against the actor's Django model permissions.
* A tool signals a user-facing failure by raising `ToolError`; the loop turns any exception into an
  error result for the model, never a crash.
"""

from __future__ import annotations
