"""MCP servers' tools, offered through the registry as `Tool`s that run as the actor.

Servers are configured in `settings.AI_CHAT_MCP_SERVERS` (name → options), over stdio or
streamable HTTP:

```python
AI_CHAT_MCP_SERVERS = {
    "notes": {  # stdio: a subprocess per call; the identity in its environment
        "command": "python",
        "args": ["-m", "notes_mcp"],
        "env": {"NOTES_USER": "{actor.pk}"},
        "permission": "notes.view_note",  # every tool of the server needs it
        "tools": {"delete_note": {"permission": "notes.delete_note", "approval": True}},
    },
    "crm": {  # streamable HTTP: the identity in a header
        "url": "https://crm.example.com/mcp",
        "headers": {"Authorization": "Bearer {env[CRM_TOKEN]}", "X-User": "{actor.email}"},
    },
}
```

Options: `command` + `args`, `env`, `cwd` (stdio) or `url` + `headers` (HTTP); `prefix` (the
tools are named `<prefix>_<tool>`, default the server's name; characters a provider refuses
become `_`); `include` (only these MCP tool names); `permission` (a Django permission or a list:
the actor must have all of them for any tool of the server) and `tools` (per MCP tool name:
`permission`, `approval`, `description`); `approval` (the server's default for
`Tool.requires_approval`); `timeout` (seconds per call, 30) and `list_timeout` (seconds to list
the tools, 10); `cache_seconds` (how long a listing is reused, 300).

Templates in `env` and `headers` are `str.format` strings over `actor` (`pk`, `id`, `username`,
`email` only: no other attribute of the user reaches a server; empty in no-user mode) and `env`
(the worker's environment). A user lacking a permission is not offered the tool, and a call is
refused. A server that cannot be reached while listing contributes the tools it listed last (or
none, logged); a call to a server that is down, slow or failing is a `ToolError` the model reads,
never a failed answer.

Built on pydantic-ai's `MCPToolset` (`pip install "django-ai-chat[mcp]"`, which brings the MCP
client and the official `mcp` SDK): one connection per listing and per call, opened with the
actor's identity and closed after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError, ToolError
from django_ai_chat.tools.tool import Tool, actor_has_perms

__all__ = ["MCPServerConfig", "MCPTool", "aserver_tools", "server_configs"]

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_OPTIONS = frozenset(
    {
        "command", "args", "env", "cwd", "url", "headers", "prefix", "include", "permission",
        "tools", "approval", "timeout", "list_timeout", "cache_seconds",
    }
)  # fmt: skip


@dataclass(frozen=True)
class MCPServerConfig:
    """One entry of `AI_CHAT_MCP_SERVERS`, checked (see the module docstring for the options)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""
    include: frozenset[str] | None = None
    permissions: tuple[str, ...] = ()
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    approval: bool = False
    timeout: float = 30.0
    list_timeout: float = 10.0
    cache_seconds: float = 300.0

    @classmethod
    def from_setting(cls, name: str, options: Mapping[str, Any]) -> MCPServerConfig:
        """Check one entry of the setting.

        Raises:
            ConfigurationError: Unknown options, neither or both of `command` and `url`, or a
                value of the wrong shape; the message names the server.
        """
        where = f"AI_CHAT_MCP_SERVERS[{name!r}]"
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"{where} must be a dict of options, not {options!r}.")
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"{where} has unknown options {unknown}; known: {sorted(_OPTIONS)}."
            )
        if bool(options.get("command")) == bool(options.get("url")):
            raise ConfigurationError(
                f"{where} needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)."
            )
        permission = options.get("permission") or ()
        permissions = (permission,) if isinstance(permission, str) else tuple(permission)
        tools = options.get("tools") or {}
        for tool_name, tool_options in tools.items():
            extra = sorted(set(tool_options) - {"permission", "approval", "description"})
            if extra:
                raise ConfigurationError(
                    f"{where}['tools'][{tool_name!r}] has unknown options {extra}; known: "
                    "['approval', 'description', 'permission']."
                )
        include = options.get("include")
        try:
            return cls(
                name=name,
                command=options.get("command"),
                args=tuple(str(a) for a in options.get("args", ())),
                env=dict(options.get("env") or {}),
                cwd=options.get("cwd"),
                url=options.get("url"),
                headers=dict(options.get("headers") or {}),
                prefix=_UNSAFE.sub("_", str(options.get("prefix", name))),
                include=None if include is None else frozenset(include),
                permissions=permissions,
                tools=dict(tools),
                approval=bool(options.get("approval", False)),
                timeout=float(options.get("timeout", 30.0)),
                list_timeout=float(options.get("list_timeout", 10.0)),
                cache_seconds=float(options.get("cache_seconds", 300.0)),
            )
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"{where}: {error}") from error

    def tool_name(self, mcp_name: str) -> str:
        """The registry name of the server's tool `mcp_name` (`<prefix>_<name>`, ≤ 64)."""
        name = _UNSAFE.sub("_", mcp_name)
        return f"{self.prefix}_{name}"[:64] if self.prefix else name[:64]


class MCPTool(Tool):
    """A tool of an MCP server: offered to actors with its permissions, called as the actor."""

    def __init__(self, server: MCPServerConfig, mcp_name: str, description: str, schema: Any):
        """Wrap the tool `mcp_name` as the server listed it.

        Args:
            server: Its server's configuration.
            mcp_name: The tool's name on the server (what a call sends).
            description: The server's description (the setting's `description` wins).
            schema: The server's JSON schema of the arguments.
        """
        options = server.tools.get(mcp_name, {})
        parameters = dict(schema) if isinstance(schema, Mapping) else {}
        parameters.setdefault("type", "object")
        parameters.setdefault("properties", {})
        super().__init__(
            name=server.tool_name(mcp_name),
            description=str(options.get("description") or description or mcp_name),
            parameters=parameters,
            approval=bool(options.get("approval", server.approval)),
        )
        self.server = server
        self.mcp_name = mcp_name
        permission = options.get("permission") or ()
        own = (permission,) if isinstance(permission, str) else tuple(permission)
        self.permissions: tuple[str, ...] = (*server.permissions, *own)

    def has_permission(self, actor: Any) -> bool:
        """The actor has every permission of the server and of the tool (none: everyone)."""
        return actor_has_perms(actor, self.permissions)

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Call the tool on its server as `actor`.

        Raises:
            ToolError: The actor lacks a permission, the server refused the call or failed, is
                down, or did not answer within `timeout`.
        """
        if not await sync_to_async(self.has_permission)(actor):
            raise ToolError(f"You do not have permission to use the tool {self.name!r}.")
        toolset = _toolset(self.server, actor)
        try:
            async with asyncio.timeout(self.server.timeout):
                result = await toolset.direct_call_tool(self.mcp_name, arguments)
        except TimeoutError:
            raise ToolError(
                f"The MCP server {self.server.name!r} did not answer within "
                f"{self.server.timeout:g} s; try again later or answer without it."
            ) from None
        except Exception as error:
            raise _call_error(self.server, self.mcp_name, error) from error
        return _jsonable(result)


def server_configs() -> list[MCPServerConfig]:
    """The servers of `settings.AI_CHAT_MCP_SERVERS`, checked (`ConfigurationError` if not)."""
    configured = ai_chat_settings.MCP_SERVERS or {}
    if not isinstance(configured, Mapping):
        raise ConfigurationError(
            f"settings.AI_CHAT_MCP_SERVERS must map server names to options, not {configured!r}."
        )
    return [MCPServerConfig.from_setting(name, options) for name, options in configured.items()]


_MAX_LISTINGS = 1000
"""Listings kept before the expired ones are dropped (one per server and identity)."""

_listings: dict[tuple[str, str], tuple[float, list[MCPTool]]] = {}
"""(server, identity) → (when listed, tools): listings are reused for `cache_seconds`."""


async def aserver_tools(actor: Any) -> list[MCPTool]:
    """Every configured server's tools, as the actor sees them (listed with its identity).

    Servers are listed concurrently; one that fails or times out gives its last listing for
    this identity (or nothing), logged. Permissions are not checked here: the registry does.
    """
    servers = server_configs()
    if not servers:
        return []
    listed = await asyncio.gather(*(_list(server, actor) for server in servers))
    return [tool for tools in listed for tool in tools]


async def _list(server: MCPServerConfig, actor: Any) -> list[MCPTool]:
    key = (server.name, repr(sorted(_identity_fields(actor).items())))
    cached = _listings.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < server.cache_seconds:
        return cached[1]
    try:
        toolset = _toolset(server, actor)
        async with asyncio.timeout(server.list_timeout):
            listed = await toolset.list_tools()
    except ConfigurationError:
        raise
    except Exception as error:
        logger.warning(
            "MCP server %r could not be listed (%s); %s.",
            server.name,
            _describe(error),
            "using its last listing" if cached else "its tools are not offered",
        )
        return [] if cached is None else cached[1]
    tools = [
        MCPTool(server, item.name, item.description or "", _schema_of(item))
        for item in listed
        if server.include is None or item.name in server.include
    ]
    if len(_listings) >= _MAX_LISTINGS:  # one per server and user: drop the expired ones
        for old in [k for k, (when, _) in _listings.items() if now - when >= server.cache_seconds]:
            del _listings[old]
    _listings[key] = (now, tools)
    return tools


def _schema_of(item: Any) -> Any:
    # The MCP SDK v2 names it `input_schema`; v1 `inputSchema`.
    schema = getattr(item, "input_schema", None)
    return schema if schema is not None else getattr(item, "inputSchema", None)


def _toolset(server: MCPServerConfig, actor: Any) -> Any:
    """A pydantic-ai `MCPToolset` for one connection to `server` as `actor`."""
    try:
        from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
        from pydantic_ai.mcp import MCPToolset
    except ImportError as error:
        raise ConfigurationError(
            'MCP servers need the MCP client: pip install "django-ai-chat[mcp]".'
        ) from error
    transport: Any
    if server.url:
        headers = {k: _render(server, v, actor) for k, v in server.headers.items()}
        transport = StreamableHttpTransport(server.url, headers=headers)
    else:
        assert server.command is not None
        env = {k: _render(server, v, actor) for k, v in server.env.items()}
        transport = StdioTransport(
            command=server.command, args=list(server.args), env=env, cwd=server.cwd
        )
    # 'error': failures raise here, and `MCPTool.acall` turns them into `ToolError`s.
    return MCPToolset(
        transport, tool_error_behavior="error", cache_tools=False, init_timeout=server.timeout
    )


class _Identity:
    """What a template may read of the actor (nothing else of the user reaches a server)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.__dict__.update(fields)


def _identity_fields(actor: Any) -> dict[str, str]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"pk": "", "id": "", "username": "", "email": ""}
    get_username = getattr(actor, "get_username", None)
    email_field = getattr(actor, "get_email_field_name", lambda: "email")()
    return {
        "pk": str(actor.pk),
        "id": str(actor.pk),
        "username": str(get_username() if callable(get_username) else ""),
        "email": str(getattr(actor, email_field, "") or ""),
    }


def _render(server: MCPServerConfig, template: str, actor: Any) -> str:
    try:
        return str(template).format(actor=_Identity(_identity_fields(actor)), env=os.environ)
    except (AttributeError, KeyError, IndexError, ValueError) as error:
        raise ConfigurationError(
            f"AI_CHAT_MCP_SERVERS[{server.name!r}]: the template {template!r} cannot be filled "
            f"({error!r}); use {{actor.pk}}, {{actor.username}}, {{actor.email}} or "
            "{env[NAME]}."
        ) from error


def _call_error(server: MCPServerConfig, mcp_name: str, error: Exception) -> Exception:
    """The error the model reads for a failed call (a `ConfigurationError` stays one)."""
    if isinstance(error, ConfigurationError):
        return error
    try:
        from fastmcp.exceptions import McpError
        from fastmcp.exceptions import ToolError as MCPToolError
    except ImportError:  # pragma: no cover: the toolset could not have been built
        return ToolError(str(error))
    if isinstance(error, MCPToolError | McpError):
        # The server's own words about the call: meant for the model.
        return ToolError(f"The MCP tool {mcp_name!r} failed: {error}")
    logger.warning("MCP server %r is unavailable: %s", server.name, _describe(error))
    return ToolError(
        f"The MCP server {server.name!r} is unavailable right now ({type(error).__name__}); "
        "try again later or answer without it."
    )


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _jsonable(value: Any) -> Any:
    """A call's result as JSON: binary content (an image, audio) is described, not sent."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    media_type = getattr(value, "media_type", None)
    if media_type is not None:
        return f"[{media_type} content]"
    return str(value)
