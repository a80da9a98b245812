"""`ai_sdk`: an answer's rows and deltas as UI message stream chunks, a stored message as parts.

The end-to-end behaviour (the `ai` package's own client against a running project) is in
`tests/browser/test_ai_sdk_client.py`; these pin the mapping itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django_ai_chat.ai_sdk import AnswerChunks, encode, ui_message

ANSWER_ID = "01a23c4e-440c-76b7-99e2-fb85873f328b"


@dataclass
class Row:
    text: str = ""
    complete: bool = False
    stopped: bool = False
    error: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    id: str = ANSWER_ID
    source: str = "agent"
    inserted_at: datetime = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)


def _wire(chunks: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(encode(c).removeprefix("data: ")) for c in chunks]


CALL = {"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}, "offset": 6}
RESULT = {"tool_call_id": "call_1", "name": "weather", "content": {"c": 21}, "is_error": False}


def test_a_tool_call_cuts_the_text_where_the_model_made_it() -> None:
    row = Row("Let's see.\n\nIt is 21 °C.", complete=True, tool_calls=[CALL], tool_results=[RESULT])
    row.tool_calls = [{**CALL, "offset": len("Let's see.")}]

    wire = _wire(AnswerChunks(ANSWER_ID).row(row))

    assert [c["type"] for c in wire] == [
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-available",
        "tool-output-available",
        "text-start",
        "text-delta",
        "text-end",
        "finish",
    ]
    assert wire[1]["delta"] == "Let's see."
    assert wire[3] == {
        "type": "tool-input-available",
        "toolCallId": "call_1",
        "toolName": "weather",
        "input": {"city": "Paris"},
    }
    assert wire[4]["output"] == {"c": 21}
    assert wire[6]["delta"] == "\n\nIt is 21 °C."
    assert wire[5]["id"] != wire[0]["id"]  # a new text part after the tool
    assert wire[-1]["finishReason"] == "stop"
    assert wire[-1]["messageMetadata"]["complete"] is True


def test_deltas_are_sent_once_and_a_gap_asks_for_the_row() -> None:
    state = AnswerChunks(ANSWER_ID)
    assert [c["delta"] for c in _wire(state.delta(0, "Hel")) if "delta" in c] == ["Hel"]
    assert state.delta(0, "Hel") == []  # already sent
    assert [c["delta"] for c in _wire(state.delta(1, "ello")) if "delta" in c] == ["lo"]
    assert state.delta(9, "gap") is None
    more = _wire(state.row(Row("Hello, world", complete=True)))
    assert [c["type"] for c in more] == ["text-delta", "text-end", "finish"]
    assert more[0]["delta"] == ", world"
    assert state.delta(12, "late") == []  # finished: nothing more


def test_an_error_goes_out_before_finish_with_the_text_kept() -> None:
    wire = _wire(AnswerChunks(ANSWER_ID).row(Row("Half", complete=True, error="It failed.")))

    assert [c["type"] for c in wire][-3:] == ["text-end", "error", "finish"]
    assert wire[-2]["errorText"] == "It failed."
    assert wire[-1]["finishReason"] == "error"


def test_a_stored_answer_is_the_uimessage_a_client_builds() -> None:
    failed = {**RESULT, "content": "no such city", "is_error": True}
    row = Row("Checked.", complete=True, tool_calls=[{**CALL, "offset": 0}], tool_results=[failed])

    message = ui_message(row)

    assert message["id"] == ANSWER_ID
    assert message["role"] == "assistant"
    assert message["parts"] == [
        {
            "type": "tool-weather",
            "toolCallId": "call_1",
            "state": "output-error",
            "input": {"city": "Paris"},
            "errorText": "no such city",
        },
        {"type": "text", "text": "Checked.", "state": "done"},
    ]
    assert message["metadata"] == {
        "createdAt": "2026-12-03T14:00:00+00:00",
        "complete": True,
        "stopped": False,
        "error": "",
    }


def test_a_question_is_one_text_part_and_old_calls_without_offset_go_first() -> None:
    question = ui_message(Row("Hi?", source="user"))
    old = ui_message(Row("After.", complete=True, tool_calls=[{**CALL, "offset": None}]))

    assert question["parts"] == [{"type": "text", "text": "Hi?"}]
    assert question["metadata"] == {"createdAt": "2026-12-03T14:00:00+00:00"}
    assert [p["type"] for p in old["parts"]] == ["tool-weather", "text"]


@dataclass
class Approval:
    status: str = "pending"
    pk: str = "01a23c4e-0000-7000-8000-000000000001"
    call_id: str = "call_1"
    tool_name: str = "weather"
    arguments: dict[str, Any] = field(default_factory=lambda: {"city": "Paris"})

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"


@dataclass
class Approvals:
    rows: list[Approval]

    def all(self) -> list[Approval]:
        return self.rows


def test_a_paused_answer_asks_for_approval_and_its_continuation_sends_only_what_is_new() -> None:
    approval = Approval()
    call = {**CALL, "offset": len("Let me check.")}
    paused = Row("Let me check.", tool_calls=[call])
    paused.approvals = Approvals([approval])  # type: ignore[attr-defined]

    wire = _wire(AnswerChunks(ANSWER_ID).row(paused))

    assert [c["type"] for c in wire][-3:] == [
        "tool-input-available",
        "tool-approval-request",
        "finish",
    ]
    assert wire[-2] == {
        "type": "tool-approval-request",
        "approvalId": approval.pk,
        "toolCallId": "call_1",
    }
    assert wire[-1]["finishReason"] == "tool-calls"
    assert wire[-1]["messageMetadata"]["complete"] is False
    # Denied; the client holds the paused message and gets only what follows.
    approval.status = "denied"
    held = AnswerChunks(ANSWER_ID).resumed(paused)
    denial = {**RESULT, "content": "The user denied this tool call.", "is_error": False}
    done = Row("Let me check. I may not.", complete=True, tool_calls=[call], tool_results=[denial])
    done.approvals = Approvals([approval])  # type: ignore[attr-defined]

    rest = _wire(held.row(done))

    assert [c["type"] for c in rest] == [
        "tool-output-denied",
        "text-start",
        "text-delta",
        "text-end",
        "finish",
    ]
    assert rest[2]["delta"] == " I may not."
    parts = ui_message(done)["parts"]
    assert parts[1]["state"] == "output-denied"
