"""MCP servers' tools (`django_ai_chat.tools.mcp`): a real MCP server, over stdio and HTTP.

The server is `tests/mcp/notes_server.py`, written with the official `mcp` SDK, started as a real
subprocess (stdio: by each connection; streamable HTTP: once, on a free port). Answers run
through the registry and the loop with a scripted model, the first one through a real answer
job on a real procrastinate worker.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.db import connection, connections

from django_ai_chat.answers import Responder
from django_ai_chat.exceptions import ConfigurationError, ToolError
from django_ai_chat.jobs import ChatJobs
from django_ai_chat.testing import ScriptedLLM, ToolCall, make_user
from django_ai_chat.tools import mcp as mcp_tools
from django_ai_chat.tools import needs_approval, registry
from django_ai_chat.tools.mcp import MCPServerConfig, MCPTool
from django_ai_chat.worker import Workers
from tests.e2e.newproject import free_port
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0  # upper bound for something to happen; never a speed assertion
SERVER = Path(__file__).parents[1] / "mcp" / "notes_server.py"
T = TypeVar("T")


class MCPResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    model = "test:scripted"
    tools = True


responder = MCPResponder()
mcp_jobs = ChatJobs("mcpchat", responder)


def _start_http_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if process.poll() is not None:
                pytest.fail("the MCP server exited")
            time.sleep(0.05)
    _stop(process)
    pytest.fail("the MCP server did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(10)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    process, url = _start_http_server()
    try:
        yield url
    finally:
        _stop(process)


def mcp_names(tools: list[Any]) -> list[str]:
    return sorted(t.name for t in tools if isinstance(t, MCPTool))


def stdio_server(**options: Any) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(SERVER), "stdio"],
        "env": {"CHAT_USER": "{actor.pk}"},
        **options,
    }


def http_server(url: str, **options: Any) -> dict[str, Any]:
    return {"url": url, "headers": {"X-Chat-User": "{actor.pk}"}, **options}


@pytest.fixture(autouse=True)
async def _fresh() -> AsyncIterator[None]:
    mcp_tools._listings.clear()
    yield
    mcp_tools._listings.clear()
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def alice() -> Any:
    return await sync_to_async(make_user)("alice")


async def ask(actor: Any, text: str = "Who am I?") -> Message:
    conversation = await Conversation.objects.acreate(user=actor, title="MCP")
    return await Message.objects.acreate(conversation=conversation, text=text)


async def db(function: Callable[[], T]) -> T:
    def run() -> T:
        try:
            return function()
        finally:
            connection.close()

    return await sync_to_async(run)()


async def eventually(what: str, condition: Callable[[], Any]) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if result := await db(condition):
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    workers = Workers(
        mcp_jobs.queues, shutdown_timeout=1, name="tests", fetch_job_polling_interval=0.1
    )
    await workers.astart()
    try:
        yield workers
    finally:
        await workers.astop()


# -- through an answer job ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_an_answer_job_calls_the_servers_tool_as_the_user(
    transport: str,
    http_url: str,
    scripted_llm: ScriptedLLM,
    alice: Any,
    settings: Any,
    workers: Workers,
) -> None:
    server = stdio_server() if transport == "stdio" else http_server(http_url)
    settings.AI_CHAT_MCP_SERVERS = {"notes": server}
    scripted_llm.add_turns([ToolCall("notes_whoami", {})], ["You are you."])
    question = await ask(alice)

    await db(lambda: mcp_jobs.defer_response(question, alice))
    answer = await eventually(
        "the answer",
        lambda: Message.objects.filter(response_to=question, complete=True).first(),
    )

    assert sorted(n for n in scripted_llm.tool_names[0] if n.startswith("notes_")) == [
        "notes_add_numbers",  # "add.numbers" on the server: a name every provider accepts
        "notes_explode",
        "notes_whoami",
    ]
    assert (answer.text, answer.error) == ("You are you.", "")
    [result] = answer.tool_results
    # The server saw the actor's identity: the header over HTTP, the environment over stdio.
    assert (result["content"], result["is_error"]) == (f"user={alice.pk}", False)


# -- the loop, directly -------------------------------------------------------------------------


async def test_arguments_go_to_the_tool_under_its_server_name(
    http_url: str, scripted_llm: ScriptedLLM, alice: Any, settings: Any
) -> None:
    settings.AI_CHAT_MCP_SERVERS = {"notes": http_server(http_url)}
    scripted_llm.add_turns([ToolCall("notes_add_numbers", {"a": 2, "b": 40})], ["42."])
    question = await ask(alice, "2 + 40?")

    await responder.respond(question.pk, actor=alice)

    answer = await Message.objects.aget(response_to=question)
    assert answer.tool_results[0]["content"] == 42
    assert answer.text == "42."


async def test_a_failing_tool_is_an_error_the_model_reads(
    http_url: str, scripted_llm: ScriptedLLM, alice: Any, settings: Any
) -> None:
    settings.AI_CHAT_MCP_SERVERS = {"notes": http_server(http_url)}
    scripted_llm.add_turns([ToolCall("notes_explode", {})], ["It failed."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await Message.objects.aget(response_to=question)
    [result] = answer.tool_results
    assert result["is_error"] is True
    assert "the notes are on fire" in result["content"]
    assert (answer.text, answer.error) == ("It failed.", "")


async def test_a_server_gone_down_gives_the_model_a_tool_error_not_a_failed_answer(
    scripted_llm: ScriptedLLM, alice: Any, settings: Any
) -> None:
    process, url = await sync_to_async(_start_http_server)()
    settings.AI_CHAT_MCP_SERVERS = {"notes": http_server(url, timeout=10)}
    try:
        assert "notes_whoami" in [t.name for t in await registry.afor_actor(alice)]
    finally:
        _stop(process)
    scripted_llm.add_turns([ToolCall("notes_whoami", {})], ["The server is down."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    # Listed before it went down (the listing is reused): the call fails, the answer does not.
    answer = await Message.objects.aget(response_to=question)
    [result] = answer.tool_results
    assert result["is_error"] is True
    assert "MCP server 'notes' is unavailable" in result["content"]
    assert (answer.text, answer.error, answer.complete) == ("The server is down.", "", True)


async def test_a_server_never_reached_offers_no_tools_and_the_answer_goes_on(
    scripted_llm: ScriptedLLM, alice: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    settings.AI_CHAT_MCP_SERVERS = {"notes": http_server(url, list_timeout=5)}
    scripted_llm.add_turns(["No tools today."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    answer = await Message.objects.aget(response_to=question)
    assert (answer.text, answer.error) == ("No tools today.", "")
    assert [n for n in scripted_llm.tool_names[0] if n.startswith("notes_")] == []
    assert "MCP server 'notes' could not be listed" in caplog.text


# -- permissions and approval ----------------------------------------------------------------


async def test_a_user_without_the_servers_permission_is_not_offered_its_tools_nor_served(
    http_url: str, scripted_llm: ScriptedLLM, alice: Any, settings: Any
) -> None:
    settings.AI_CHAT_MCP_SERVERS = {
        "notes": http_server(
            http_url,
            permission="testapp.view_note",
            tools={"explode": {"permission": "testapp.delete_note"}},
        )
    }
    bob = await sync_to_async(make_user)("bob")
    view = await Permission.objects.aget(codename="view_note")
    await bob.user_permissions.aadd(view)
    bob = await sync_to_async(type(bob).objects.get)(pk=bob.pk)  # no cached permissions

    assert mcp_names(await registry.afor_actor(alice)) == []
    offered = mcp_names(await registry.afor_actor(bob))
    assert offered == ["notes_add_numbers", "notes_whoami"]  # explode needs delete_note too

    # Called anyway (a tool object handed over, a stale list): refused, nothing runs.
    whoami = next(t for t in await mcp_tools.aserver_tools(alice) if t.name == "notes_whoami")
    with pytest.raises(ToolError, match="You do not have permission"):
        await whoami.acall({}, alice)
    assert await whoami.acall({}, bob) == f"user={bob.pk}"

    # The model naming a tool it was not offered gets an error, and the answer goes on.
    scripted_llm.add_turns([ToolCall("notes_whoami", {})], ["Sorry."])
    question = await ask(alice)
    await responder.respond(question.pk, actor=alice)
    answer = await Message.objects.aget(response_to=question)
    assert answer.tool_results[0]["is_error"] is True
    assert (answer.text, answer.error) == ("Sorry.", "")


async def test_approval_is_configured_per_server_and_per_tool(
    http_url: str, alice: Any, settings: Any
) -> None:
    settings.AI_CHAT_MCP_SERVERS = {
        "notes": http_server(http_url, approval=True, tools={"whoami": {"approval": False}})
    }
    tools = {t.name: t for t in await mcp_tools.aserver_tools(alice)}

    assert needs_approval(tools["notes_explode"], {}, alice) is True
    assert needs_approval(tools["notes_whoami"], {}, alice) is False
    settings.AI_CHAT_TOOL_APPROVAL = {"notes_explode": False}  # the project's word wins
    assert needs_approval(tools["notes_explode"], {}, alice) is False


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": "x", "url": "http://x"}, "exactly one of 'command'"),
        ({}, "exactly one of 'command'"),
        ({"url": "http://x", "header": {}}, "unknown options \\['header'\\]"),
        ({"url": "http://x", "tools": {"a": {"perm": "x"}}}, "unknown options \\['perm'\\]"),
    ],
)
def test_a_malformed_server_entry_names_the_server(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"AI_CHAT_MCP_SERVERS\['crm'\].*{message}"):
        MCPServerConfig.from_setting("crm", options)


def test_templates_read_only_the_actors_identity() -> None:
    server = MCPServerConfig.from_setting(
        "crm", {"url": "http://x", "headers": {"X": "{actor.password}"}}
    )
    with pytest.raises(ConfigurationError, match="cannot be filled"):
        mcp_tools._toolset(server, None)
    tool = MCPTool(server, "find.it/now", "", {"type": "object"})
    assert tool.name == "crm_find_it_now"
