"""The offline demo model behind `"demo:"` model strings (registered into `llm` on import)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCall,
    DeltaToolCalls,
    FunctionModel,
)

from django_ai_chat.llm import register_provider

_STARTER_TOOL_PREFIX = "chat_list_conversations"
_WORDS = re.compile(r"\s*\S+\s*|\s+")
_VERSION_NOTE = (
    "\nThis is answer number {number} to it: regenerate, or edit your message, and the earlier "
    "versions stay behind the switcher (1/2, 2/2…) under the message.\n"
)
_ANSWERED: dict[str, int] = {}  # prompt → answers given in this process, so versions differ
_ANSWERED_MAX = 1000
_ATTACHED = re.compile(r"\[Attached file: (?P<about>.+?) · (?P<how>[^·\]]+)\]\n?")

_ANSWER = """\
## Hello from the offline demo model

This answer comes from the **offline demo model** (`demo:`): no API key, no network.
You wrote: *{prompt}*
{version_note}{files_note}{tool_note}
What this chat already does:

- Streams answers word by word, as a real model would
- Renders **Markdown**: headings, lists, tables and code
- Calls tools *as you*, with your permissions

| Feature   | Where it lives         |
|-----------|------------------------|
| Streaming | `django_ai_chat.loop`  |
| Tools     | `ai_tools.py`          |
| Markdown  | `django_ai_chat.markdown` |

```python
# settings.py: switch to a real model
AI_CHAT_MODEL = "openai:gpt-4o"  # and set OPENAI_API_KEY
```

Ask me anything: I answer every question this way, because I am only a demo.
"""


_THINKING = (
    'The person wrote "{prompt}". I am the offline demo model, so I cannot really answer that. '
    "The most useful thing I can do is show what this chat does: stream Markdown with a table "
    "and some code, and say how to switch to a real model. A short greeting first, then the list."
)


def _last_user_content(messages: list[ModelMessage]) -> list[Any]:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    content = part.content
                    return [content] if isinstance(content, str) else list(content)
    return []


def _last_user_text(messages: list[ModelMessage]) -> str:
    # The person's own words: the text parts that do not introduce an attached file.
    texts = _last_user_content(messages)
    return " ".join(t for t in texts if isinstance(t, str) and not _ATTACHED.match(t))


def _files_note(messages: list[ModelMessage]) -> str:
    """What was attached, as a Markdown list: names, types, sizes, how each arrived."""
    lines: list[str] = []
    about = ""
    for part in _last_user_content(messages):
        if isinstance(part, str) and (header := _ATTACHED.match(part)):
            name, _, rest = header.group("about").partition(" · ")
            if "text follows" in header.group("how"):
                words = " ".join(part[header.end() :].split()[:12])
                words = words.split("[End of")[0].strip()
                lines.append(f"- **{name}** ({rest}): read as text, starting “{words}…”")
            else:
                about = f"**{name}** ({rest})"
        elif isinstance(part, BinaryContent):
            kind = "an image" if part.is_image else "a file"
            size = len(part.data)
            lines.append(
                f"- {about or 'a file'}: received as {kind} ({part.media_type}, {size} bytes)"
            )
            about = ""
    if not lines:
        return ""
    return "\nYou attached:\n\n" + "\n".join(lines) + "\n"


def _tool_returns_since_prompt(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    returns: list[ToolReturnPart] = []
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            continue
        if any(isinstance(part, UserPromptPart) for part in message.parts):
            break
        returns.extend(part for part in message.parts if isinstance(part, ToolReturnPart))
    return returns


def _describe(result: ToolReturnPart) -> str:
    content: Any = result.content
    if result.outcome != "success":
        return f"I tried `{result.tool_name}`, but it failed: {result.model_response_str()}"
    if isinstance(content, dict):
        items = next((v for v in content.values() if isinstance(v, list)), None)
        content = items if items is not None else content
    if isinstance(content, list):
        titles = [
            str(item["title"]) for item in content if isinstance(item, dict) and item.get("title")
        ]
        shown = ", ".join(f"*{title}*" for title in titles[:3])
        more = f" and {len(titles) - 3} more" if len(titles) > 3 else ""
        listing = f": {shown}{more}" if titles else ""
        found = f"{len(content)} conversation(s){listing}"
        return f"I called `{result.tool_name}` first: it found {found}."
    text = json.dumps(content, default=str)
    return f"I called `{result.tool_name}` first; it answered `{text[:80]}`."


__all__ = ["DemoModel"]


class DemoModel(FunctionModel):
    """Streams a friendly Markdown answer word by word; calls a starter tool when one exists.

    Files attached to the question are echoed: name, type, size and how each arrived (an image
    as the file, a PDF or a text file as the first words of its text).

    When a tool named `chat_list_conversations…` is available it is called first, and the answer
    mentions what it returned. Before the answer it thinks visibly (a `ThinkingPart`, streamed
    like the text), so the chat's "Thinking" section shows without a provider that reasons.
    """

    def __init__(self, *, delay: float | None = None) -> None:
        """Create the demo model.

        Args:
            delay: Seconds between words; default: setting `AI_CHAT_DEMO_DELAY` (0.03).
        """
        self._delay = delay
        super().__init__(self._respond, stream_function=self._stream, model_name="demo")

    @property
    def delay(self) -> float:
        """Seconds between streamed words."""
        if self._delay is not None:
            return self._delay
        from django_ai_chat.conf import ai_chat_settings

        return float(ai_chat_settings.DEMO_DELAY)

    def _thinking(self, messages: list[ModelMessage]) -> str:
        return _THINKING.format(prompt=_prompt(messages) or "nothing")

    def _answer(self, messages: list[ModelMessage]) -> str:
        prompt = _prompt(messages)
        notes = [_describe(result) for result in _tool_returns_since_prompt(messages)]
        tool_note = "".join(f"\n{note}\n" for note in notes)
        return _ANSWER.format(
            prompt=prompt or "(nothing)",
            version_note=_version_note(prompt),
            files_note=_files_note(messages),
            tool_note=tool_note,
        )

    async def _stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls | DeltaThinkingCalls]:
        starter = next(
            (t.name for t in info.function_tools if t.name.startswith(_STARTER_TOOL_PREFIX)), None
        )
        if starter and not _tool_returns_since_prompt(messages):
            yield {0: DeltaToolCall(name=starter, json_args="{}", tool_call_id="demo_call_1")}
            return
        delay = self.delay
        for index, word in enumerate(_WORDS.findall(self._thinking(messages))):
            if delay and index:
                await asyncio.sleep(delay)
            yield {0: DeltaThinkingPart(content=word)}
        for index, word in enumerate(_WORDS.findall(self._answer(messages))):
            if delay and index:
                await asyncio.sleep(delay)
            yield word

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # Non-streamed requests are titles: a few words of the user's message.
        words = _last_user_text(messages).split()[:6]
        return ModelResponse(parts=[TextPart(" ".join(["Demo:", *words]))])


def _version_note(prompt: str) -> str:
    # The same question asked again (a regenerate) gets a visibly different answer.
    if len(_ANSWERED) >= _ANSWERED_MAX:
        _ANSWERED.clear()
    number = _ANSWERED[prompt] = _ANSWERED.get(prompt, 0) + 1
    return _VERSION_NOTE.format(number=number) if number > 1 else ""


def _prompt(messages: list[ModelMessage]) -> str:
    prompt = " ".join(_last_user_text(messages).split())
    return prompt[:119] + "…" if len(prompt) > 120 else prompt


def _demo(name: str) -> DemoModel:
    # `demo:instant` streams without the human-pace pauses (handy in tests).
    return DemoModel(delay=0.0 if name == "instant" else None)


register_provider("demo", _demo)
