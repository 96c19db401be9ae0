"""Token usage and its price, from the gateway's numbers and the catalog's costs (Decimal throughout).

The gateway's own usage is always preferred; `estimate_tokens` exists for the rare answer that
carries none, and counts offline with LiteLLM's bundled tokenizer (never a download).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dify_plugin.entities.model.llm import LLMUsage
from dify_plugin.entities.model.text_embedding import EmbeddingUsage

from adapters.catalog.loader import CatalogModel
from adapters.engine.litellm_facade import count_tokens

PRICE_UNIT = Decimal("0.000001")  # prices are shown per million tokens
_MILLION = Decimal(1_000_000)
_CENT_FRACTION = Decimal("0.0000001")
_ZERO = Decimal(0)


def _amount(tokens: int, cost_per_token: Decimal | None) -> tuple[Decimal, Decimal]:
    """(unit price per million, total) for a token count."""
    if cost_per_token is None:
        return _ZERO, _ZERO
    unit_price = cost_per_token * _MILLION
    return unit_price, (tokens * unit_price * PRICE_UNIT).quantize(_CENT_FRACTION, rounding=ROUND_HALF_UP)


def llm_usage(
    model: CatalogModel, prompt_tokens: int, completion_tokens: int, latency: float, cached_tokens: int = 0
) -> LLMUsage:
    """The usage of one answer, priced from the catalog.

    Prompt tokens the upstream served from its context cache (`cached_tokens`, counted among the
    prompt tokens) cost the model's cache price (`cache_read_input_token_cost`) where it has one.
    Dify's usage has no field for them, so the prompt price carries their cost, while the unit
    price shown stays the list price.
    """
    info = model.info
    cached = min(max(cached_tokens, 0), prompt_tokens) if info.cache_read_input_token_cost is not None else 0
    prompt_unit, prompt_total = _amount(prompt_tokens - cached, info.input_cost_per_token)
    if cached:
        prompt_total += _amount(cached, info.cache_read_input_token_cost)[1]
    completion_unit, completion_total = _amount(completion_tokens, info.output_cost_per_token)
    return LLMUsage(
        prompt_tokens=prompt_tokens,
        prompt_unit_price=prompt_unit,
        prompt_price_unit=PRICE_UNIT,
        prompt_price=prompt_total,
        completion_tokens=completion_tokens,
        completion_unit_price=completion_unit,
        completion_price_unit=PRICE_UNIT,
        completion_price=completion_total,
        total_tokens=prompt_tokens + completion_tokens,
        total_price=prompt_total + completion_total,
        currency=info.currency or "USD",
        latency=latency,
    )


def embedding_usage(model: CatalogModel, tokens: int, latency: float) -> EmbeddingUsage:
    unit_price, total = _amount(tokens, model.info.input_cost_per_token)
    return EmbeddingUsage(
        tokens=tokens,
        total_tokens=tokens,
        unit_price=unit_price,
        price_unit=PRICE_UNIT,
        total_price=total,
        currency=model.info.currency or "USD",
        latency=latency,
    )


def estimate_tokens(model: CatalogModel, *, messages: list[dict[str, Any]] | None = None, text: str = "") -> int:
    """An offline token count for messages or plain text (used only when the gateway sends no usage)."""
    return count_tokens(model=model.gateway_model, messages=messages, text=text)
