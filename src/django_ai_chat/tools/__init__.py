"""Tools the model may call, each running as the actor (the user the chat belongs to).

Contract used by the loop (see `django_ai_chat.loop`):

* `Tool` - name, description, JSON schema of the arguments, and `acall(arguments, actor)`.
* `registry` - the process-wide `ToolRegistry`; apps register tools from their `ai_tools.py`.
* `registry.for_actor(actor, tools)` - the tools this actor may use (`True` = all, or a list of
  names), each already checked against the actor's Django model permissions.
* A tool signals a user-facing failure by raising `ToolError`; the loop turns any exception into an
  error result for the model, never a crash.

Declaring tools, in any installed app's `ai_tools.py`:

```python
from django_ai_chat.tools import ModelTools, registry, tool

notes = ModelTools(Note, fields=["title", "body", "done", "created_at"], owner="owner")


@tool
def word_count(text: str) -> int:
    \"\"\"Count the words in a text.\"\"\"
    return len(text.split())


registry.register(notes.read(), notes.get(), notes.create(), notes.update(), word_count)
```

Approval (human in the loop): a call of a tool whose `needs_approval(arguments, actor)` is true
(`requires_approval`: the write tools of `ModelTools` and `@tool(approval=True)`; the setting
`AI_CHAT_TOOL_APPROVAL` overrides it per tool name, see `needs_approval`) pauses the answer until
the user approves or denies it; approved, it runs as the user, with the same checks.

MCP servers (`settings.AI_CHAT_MCP_SERVERS`, see `django_ai_chat.tools.mcp`): their tools are
offered by `registry.afor_actor` next to the registered ones, as `MCPTool`s behind the same
permission check, and called as the actor.

The actor: a user (or `AnonymousUser`) gets Django's permission semantics; `None` means no-user
mode (the project has no users): permissions are not checked, row scopes receive `None`.
"""

from __future__ import annotations

from django_ai_chat.exceptions import ToolError
from django_ai_chat.tools.function import FunctionTool, tool
from django_ai_chat.tools.model import ModelTool, ModelTools
from django_ai_chat.tools.registry import ToolRegistry, ToolSelection, registry
from django_ai_chat.tools.tool import Tool, describe_arguments, needs_approval

__all__ = [
    "FunctionTool",
    "ModelTool",
    "ModelTools",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "ToolSelection",
    "describe_arguments",
    "needs_approval",
    "registry",
    "tool",
]
