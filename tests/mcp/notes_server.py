"""A small MCP server for the tests, written with the official `mcp` SDK (`MCPServer`: FastMCP).

Run as `python tests/mcp/notes_server.py stdio` or `... http PORT`. Its tools report who they
ran as: the `X-Chat-User` header over HTTP, the `CHAT_USER` environment variable over stdio (the
identity `django_ai_chat.tools.mcp` passes from the actor).
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("notes")


@server.tool()
def whoami(ctx: Context) -> str:
    """Who the tool runs as."""
    headers = ctx.headers or {}
    return f"user={headers.get('x-chat-user') or os.environ.get('CHAT_USER', '')}"


@server.tool(name="add.numbers")
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def explode() -> str:
    """Always fails."""
    raise ToolError("the notes are on fire")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
