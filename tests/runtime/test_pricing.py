"""Usage and cost of an answer: what the (fake) provider reported, priced from the table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin import AdminSite, ModelAdmin
from django.db import connections
from django.test import override_settings
from django.urls import path
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.types import ModelPrice
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.usage import RequestUsage

from django_ai_chat.admin import UsageAdminMixin
from django_ai_chat.answers import Responder
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.pricing import response_cost, usage_of
from django_ai_chat.testing import FakeOpenAIServer, ReportedUsage, ScriptedLLM, ToolCall, make_user
from django_ai_chat.tools import tool
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


class MessageAdmin(UsageAdminMixin, ModelAdmin):  # type: ignore[type-arg]
    pass


class Site(AdminSite):
    """The admin without its own app installed (these tests' settings have none)."""

    def get_log_entries(self, request: Any) -> list[Any]:
        return []  # LogEntry is a model of django.contrib.admin


site = Site()
site.register(Message, MessageAdmin)
urlpatterns = [path("admin/", site.urls)]


class ChatResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    model = "test:scripted"
    tools = False


@tool(name="pricing_lookup")
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


async def answer(responder: Responder, text: str = "Hi") -> Message:
    alice = await sync_to_async(make_user)("alice")
    conversation = await Conversation.objects.acreate(user=alice)
    question = await Message.objects.acreate(conversation=conversation, text=text)
    await responder.respond(question.pk, actor=alice)
    return await Message.objects.aget(response_to=question)


async def test_the_answer_stores_what_the_provider_reported_and_the_override_price(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.add_turns(
        [
            ToolCall("pricing_lookup", {"key": "a"}),
            ReportedUsage(input_tokens=120, output_tokens=9),
        ],
        [
            "It is a.",
            ReportedUsage(
                input_tokens=200, output_tokens=30, cache_read_tokens=100, reasoning_tokens=12
            ),
        ],
    )
    prices = {"input_mtok": "3", "output_mtok": "15", "cache_read_mtok": "0.3"}

    class WithTools(ChatResponder):
        tools = [lookup]

    with override_settings(AI_CHAT_PRICES={"scripted": prices}):
        stored = await answer(WithTools())

    assert [u.input_tokens for u in scripted_llm.usages] == [120, 200]
    assert (stored.input_tokens, stored.output_tokens) == (320, 39)
    assert (stored.cache_read_tokens, stored.reasoning_tokens) == (100, 12)
    assert stored.model_name == "scripted"
    table = ModelPrice(**{key: Decimal(value) for key, value in prices.items()})
    expected = sum(table.calc_price(u)["total_price"] for u in scripted_llm.usages)
    assert stored.cost == expected
    # 120 + (100 uncached * 3 + 100 cached * 0.3) input, 39 * 15 output, per million tokens.
    assert expected == Decimal("0.000360") + Decimal("0.000330") + Decimal("0.000585")


@override_settings(AI_CHAT_MODEL="openai:gpt-4o")
async def test_usage_over_http_equals_what_the_server_reported_and_genai_prices(
    fake_openai: FakeOpenAIServer,
) -> None:
    class WithTools(ChatResponder):
        tools = [lookup]

    with override_settings(AI_CHAT_OPENAI_BASE_URL=fake_openai.base_url):
        before = len(fake_openai.usages)
        stored = await answer(WithTools(), '[tool:pricing_lookup {"key": "b"}] [reasoning:5]')
    reported = fake_openai.usages[before:]

    assert len(reported) == 2  # the tool call, then the answer after its result
    assert stored.input_tokens == sum(u["prompt_tokens"] for u in reported)
    assert stored.output_tokens == sum(u["completion_tokens"] for u in reported)
    cached = [u["prompt_tokens_details"]["cached_tokens"] for u in reported]
    assert stored.cache_read_tokens == sum(cached) > 0  # the second request repeats the first
    assert stored.reasoning_tokens == 10
    assert stored.model_name == "gpt-4o"
    expected = sum(
        calc_price(
            PriceUsage(
                input_tokens=u["prompt_tokens"],
                output_tokens=u["completion_tokens"],
                cache_read_tokens=u["prompt_tokens_details"]["cached_tokens"],
            ),
            "gpt-4o",
            provider_id="openai",
        ).total_price
        for u in reported
    )
    assert stored.cost == expected > 0


async def test_a_model_without_a_price_has_no_cost_not_a_zero_one(scripted_llm: Any) -> None:
    scripted_llm.add_turns(["Hi.", ReportedUsage(input_tokens=10, output_tokens=2)])
    stored = await answer(ChatResponder())
    assert (stored.input_tokens, stored.output_tokens, stored.cost) == (10, 2, None)


def _response(model_name: str, provider: str | None = None, **tokens: int) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart("x")],
        usage=RequestUsage(**tokens),
        model_name=model_name,
        provider_name=provider,
    )


def test_the_provider_qualified_override_wins_and_free_models_cost_zero() -> None:
    prices = {
        "openai:gpt-4o": {"input_mtok": 1, "output_mtok": 2},
        "gpt-4o": {"input_mtok": 100, "output_mtok": 200},
        "llama3.2": {"input_mtok": 0, "output_mtok": 0},
    }
    with override_settings(AI_CHAT_PRICES=prices):
        assert response_cost(
            _response("gpt-4o", "openai", input_tokens=10**6, output_tokens=10**6)
        ) == Decimal(3)
        assert response_cost(_response("gpt-4o", "azure", input_tokens=10**6)) == Decimal(100)
        usage = usage_of([_response("llama3.2", input_tokens=5, output_tokens=5)])
    assert usage.cost == Decimal(0)


def test_one_unpriced_response_makes_the_run_cost_unknown() -> None:
    with override_settings(AI_CHAT_PRICES={"known": {"input_mtok": 1}}):
        usage = usage_of(
            [_response("known", input_tokens=10**6), _response("unknown", input_tokens=1)]
        )
    assert (usage.input_tokens, usage.requests, usage.cost) == (10**6 + 1, 2, None)


@pytest.mark.parametrize("entry", ["cheap", {"input_mtok": "a lot"}])
def test_a_malformed_price_says_which_model(entry: Any) -> None:
    with (
        override_settings(AI_CHAT_PRICES={"m": entry}),
        pytest.raises(ConfigurationError, match=r"AI_CHAT_PRICES\['m'\]"),
    ):
        response_cost(_response("m", input_tokens=1))


def _answered(user: Any, *, cost: str | None, **tokens: int) -> Message:
    conversation = Conversation.objects.create(user=user)
    question = Message.objects.create(conversation=conversation, text="Hi")
    answer = Message.objects.create_answer(
        question, cost=None if cost is None else Decimal(cost), **tokens
    )
    assert answer is not None
    return answer


def test_totals_per_user_per_conversation_and_per_answer() -> None:
    from django.template import Context, Template

    alice, bob = make_user("alice"), make_user("bob")
    _answered(alice, cost="0.5", input_tokens=100, output_tokens=10, cache_read_tokens=40)
    last = _answered(alice, cost=None, input_tokens=1, output_tokens=2, reasoning_tokens=1)
    _answered(bob, cost="2", input_tokens=1000, output_tokens=100)

    rows = MessageAdmin(Message, AdminSite()).usage_rows(since=None)
    assert [(r["user"], r["answers"], r["input_tokens"], r["cost_text"]) for r in rows] == [
        (bob, 1, 1000, "$2.00"),
        (alice, 2, 101, "$0.5000"),
    ]
    assert rows[1]["cache_read_tokens"] == 40
    conversation = Conversation.objects.with_usage().get(pk=last.conversation_id)
    page = Template(
        "{% load ai_chat %}{{ answer|usage }}|"
        "{% with u=answer|usage %}{{ u.detail }}{% endwith %}|{{ c|usage }}"
    ).render(Context({"answer": last, "c": conversation}))
    assert page == "3 tokens|1 in · 2 out (1 reasoning)|3 tokens"
    assert Message.objects.filter(conversation__user=alice).usage_totals() == {
        "answers": 2,
        "input_tokens": 101,
        "output_tokens": 12,
        "cache_read_tokens": 40,
        "reasoning_tokens": 1,
        "cost": Decimal("0.5"),
    }


@override_settings(ROOT_URLCONF=__name__)
def test_the_usage_page_lists_each_users_totals(rf: Any) -> None:
    from pathlib import Path

    import django.contrib.admin
    from django.conf import settings

    root = make_user("root", is_staff=True, is_superuser=True)
    _answered(root, cost="0.25", input_tokens=1200, output_tokens=34)
    # The admin's templates and tags, without installing the app (which would reload the apps).
    (templates,) = settings.TEMPLATES
    admin_templates = {
        **templates,
        "DIRS": [Path(django.contrib.admin.__file__).parent / "templates"],
        "OPTIONS": {
            **templates["OPTIONS"],
            "libraries": {"admin_urls": "django.contrib.admin.templatetags.admin_urls"},
        },
    }
    with override_settings(TEMPLATES=[admin_templates]):
        request = rf.get("/admin/testapp/message/usage/", {"days": "7"})
        request.user = root
        page = site.get_model_admin(Message).usage_view(request).render().content.decode()
    assert "Usage by user" in page
    assert "<strong>Last 7 days</strong>" in page
    assert f'data-owner="{root.pk}"' in page
    assert "1200" in page and "$0.2500" in page
