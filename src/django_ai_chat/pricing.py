"""What an answer cost: the provider's token counts priced from a kept table.

Prices come from `genai-prices` (the table pydantic-ai itself prices responses with, kept up to
date by its maintainers and installed with pydantic-ai), unless `AI_CHAT_PRICES` names the
model: a negotiated rate, a self-hosted model, or one released after the installed table.

Example:
    ```python
    AI_CHAT_PRICES = {
        # US dollars per million tokens; keys as genai-prices' `ModelPrice` takes them.
        "openai:gpt-4o": {"input_mtok": "2.50", "output_mtok": "10", "cache_read_mtok": "1.25"},
        "llama3.2": {"input_mtok": 0, "output_mtok": 0},  # ours: free
    }
    ```
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from genai_prices.types import ModelPrice
from pydantic_ai.messages import ModelResponse

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.events import Usage
from django_ai_chat.exceptions import ConfigurationError

__all__ = ["price_override", "priced", "response_cost", "usage_of"]

logger = logging.getLogger(__name__)


def price_override(model_name: str, *, provider: str | None = None) -> ModelPrice | None:
    """The `AI_CHAT_PRICES` entry for a model, or `None` when the setting does not name it.

    Looked up as `"<provider>:<model>"` first, then `"<model>"`.

    Raises:
        ConfigurationError: The entry is not a mapping of price keys to numbers.
    """
    prices: Mapping[str, Any] = ai_chat_settings.PRICES or {}
    for key in (f"{provider}:{model_name}" if provider else None, model_name):
        if key and key in prices:
            return _model_price(key, prices[key])
    return None


def response_cost(response: ModelResponse) -> Decimal | None:
    """US dollars for one model response (`None`: its model has no known price).

    `AI_CHAT_PRICES` wins; otherwise the cost pydantic-ai computed with `genai-prices`.
    """
    if response.model_name:
        override = price_override(response.model_name, provider=response.provider_name)
        if override is not None:
            return override.calc_price(response.usage)["total_price"]
    return response.usage.cost


def priced(response: ModelResponse) -> ModelResponse:
    """`response`, its `usage.cost` set from `genai-prices` when unset, as an agent run sets it.

    For a response that did not come through pydantic-ai's agent graph (which prices every
    response it gets), e.g. one from `pydantic_ai.direct`. Pricing never fails: a model the table
    does not know, or usage it cannot price, leaves the cost unset (`None`).
    """
    if response.usage.cost is None and response.model_name:
        try:
            response.usage.cost = response.cost().total_price
        except (LookupError, ValueError):
            pass  # not in the table (`test` and `function` models neither), or unpriceable usage
        except Exception:
            logger.warning("Could not price a response of %s.", response.model_name, exc_info=True)
    return response


def usage_of(responses: Iterable[ModelResponse], *, requests: int | None = None) -> Usage:
    """The usage of a run from its model responses: tokens summed, each response priced.

    The cost is `None` as soon as one response with tokens has no price: a partial sum would
    pass for the whole.
    """
    input_tokens = output_tokens = cache_read = cache_write = reasoning = count = 0
    cost: Decimal | None = Decimal(0)
    model_name = ""
    for response in responses:
        usage = response.usage
        count += 1
        input_tokens += usage.input_tokens
        output_tokens += usage.output_tokens
        cache_read += usage.cache_read_tokens
        cache_write += usage.cache_write_tokens
        reasoning += usage.output_reasoning_tokens
        model_name = response.model_name or model_name
        price = response_cost(response)
        if price is None and (usage.input_tokens or usage.output_tokens):
            cost = None
        elif cost is not None and price is not None:
            cost += price
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        requests=count if requests is None else requests,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        cost=cost if count else None,
        model_name=model_name,
    )


def _model_price(key: str, entry: Any) -> ModelPrice:
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"AI_CHAT_PRICES[{key!r}] must be a dict of prices per million tokens, e.g. "
            f"{{'input_mtok': '2.50', 'output_mtok': '10'}}, not {entry!r}."
        )
    try:
        values = {name: Decimal(str(value)) for name, value in entry.items()}
    except (InvalidOperation, ValueError) as error:
        raise ConfigurationError(
            f"AI_CHAT_PRICES[{key!r}] holds a price that is not a number: {entry!r}."
        ) from error
    return ModelPrice(**values)
