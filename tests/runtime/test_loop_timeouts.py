"""A hung provider never keeps an answer waiting: first-token, idle and total bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from django_ai_chat.events import DoneEvent, ErrorEvent, Event, TextDeltaEvent, ToolResultEvent
from django_ai_chat.loop import ChatMessage, Timeouts, astream

HI = [ChatMessage("user", "Hi")]
HANG = 30.0  # far beyond every bound below: reaching it means the bound did not hold


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def outcome(events: list[Event]) -> tuple[ErrorEvent, DoneEvent]:
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and isinstance(done, DoneEvent), events
    return error, done


class Provider:
    """A streaming model whose turns sleep where told; records whether its stream was closed."""

    def __init__(self, *turns: list[str | float | DeltaToolCalls]) -> None:
        self.turns = list(turns)
        self.closed = asyncio.Event()
        self.model = FunctionModel(stream_function=self._stream)

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        try:
            for item in self.turns.pop(0):
                if isinstance(item, float):
                    await asyncio.sleep(item)
                else:
                    yield item
        finally:
            self.closed.set()


@dataclass
class SlowTool:
    name: str = "slow"
    description: str = "Takes a while."
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    seconds: float = 0.6

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return "done"


async def test_no_first_token_ends_the_answer_with_a_timeout_and_closes_the_provider() -> None:
    provider = Provider([HANG, "never"])

    events = await collect(
        astream(HI, system_prompt="", model=provider.model, timeouts=Timeouts(first_token=0.2))
    )

    error, done = outcome(events)
    assert error.reason == "timeout" and "first token" in error.message
    assert done.text == ""
    assert provider.closed.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_stream_that_goes_silent_keeps_its_text_and_ends_with_a_timeout() -> None:
    provider = Provider(["Half ", "an answer", HANG, "never"])

    events = await collect(
        astream(HI, system_prompt="", model=provider.model, timeouts=Timeouts(idle=0.2))
    )

    error, done = outcome(events)
    assert error.reason == "timeout" and "between tokens" in error.message
    assert done.text == "Half an answer"
    assert provider.closed.is_set()


async def test_a_steady_stream_is_cut_at_the_total_bound() -> None:
    provider = Provider([item for n in range(200) for item in (f"{n} ", 0.02)])

    events = await collect(
        astream(HI, system_prompt="", model=provider.model, timeouts=Timeouts(idle=1, total=0.3))
    )

    error, done = outcome(events)
    assert error.reason == "timeout" and "in all" in error.message
    deltas = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert done.text == deltas and 0 < len(deltas) < len("".join(f"{n} " for n in range(200)))


async def test_a_slow_tool_is_not_mistaken_for_a_silent_provider() -> None:
    call = {0: DeltaToolCall(name="slow", json_args="{}", tool_call_id="c1")}
    provider = Provider([call], ["Done."])

    events = await collect(
        astream(
            HI,
            system_prompt="",
            model=provider.model,
            tools=[SlowTool(seconds=0.6)],
            timeouts=Timeouts(first_token=0.3, idle=0.3),
        )
    )

    assert not any(isinstance(e, ErrorEvent) for e in events), events
    assert any(isinstance(e, ToolResultEvent) and not e.is_error for e in events)
    assert isinstance(events[-1], DoneEvent) and events[-1].text == "Done."


async def test_the_bounds_default_to_the_settings(settings: Any) -> None:
    settings.AI_CHAT_FIRST_TOKEN_TIMEOUT = 0.2
    provider = Provider([HANG, "never"])

    events = await collect(astream(HI, system_prompt="", model=provider.model))

    assert outcome(events)[0].reason == "timeout"


@pytest.mark.parametrize("name", ["first_token", "idle", "total"])
def test_a_bound_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Timeouts(**{name: 0})


async def test_a_timeout_keeps_the_usage_of_the_requests_that_completed() -> None:
    call = {0: DeltaToolCall(name="slow", json_args="{}", tool_call_id="c1")}
    provider = Provider([call], [HANG, "never"])

    events = await collect(
        astream(
            HI,
            system_prompt="",
            model=provider.model,
            tools=[SlowTool(seconds=0)],
            timeouts=Timeouts(first_token=0.2),
        )
    )

    error, done = outcome(events)
    assert error.reason == "timeout"
    # The first request (the tool call) completed, FunctionModel reported its estimate; the
    # cut-off second one is kept by pydantic-ai as an interrupted response.
    assert done.usage.requests >= 1 and done.usage.input_tokens > 0 and done.usage.output_tokens > 0
