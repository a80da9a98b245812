"""A guard that makes HTTP requests to real hosts fail, so tests never reach a paid provider."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib import import_module
from typing import Any
from unittest import mock


class RealLLMRequestBlocked(RuntimeError):
    """An HTTP request to a non-loopback host was attempted while the guard was active."""


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(request: Any) -> None:
    host = str(request.url.host)
    if not _is_loopback(host):
        raise RealLLMRequestBlocked(
            f"Blocked an HTTP request to {str(request.url)!r}: tests must not call real LLM "
            "providers. Use the model 'test:<name>' with django_ai_chat.testing.ScriptedLLM, or "
            "point the provider at django_ai_chat.testing.FakeOpenAIServer (127.0.0.1)."
        )


def _guard_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        _check(request)
        return original(self, request)

    return handle_request


def _guard_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        _check(request)
        return await original(self, request)

    return handle_async_request


@contextmanager
def block_real_llm_requests() -> Iterator[None]:
    """Make HTTP requests to any host but 127.0.0.1 / ::1 / localhost raise.

    Every provider SDK (openai, anthropic, google-genai) sends through `httpx` or its fork
    `httpx2`; their transports are patched, so the request fails before DNS or a socket. The error
    (`RealLLMRequestBlocked`) names the URL and what to use instead.
    """
    with ExitStack() as stack:
        for module_name in ("httpx", "httpx2"):
            try:
                module = import_module(module_name)
            except ImportError:
                continue
            sync_cls, async_cls = module.HTTPTransport, module.AsyncHTTPTransport
            stack.enter_context(
                mock.patch.object(sync_cls, "handle_request", _guard_sync(sync_cls.handle_request))
            )
            stack.enter_context(
                mock.patch.object(
                    async_cls,
                    "handle_async_request",
                    _guard_async(async_cls.handle_async_request),
                )
            )
        yield
