"""Prompt tokens served from the upstream's context cache are priced at the model's cache price.

The gateway reports them as `usage.prompt_tokens_details.cached_tokens` (OpenAI, DashScope) or as
DeepSeek's `prompt_cache_hit_tokens`; Dify's usage has no field for them, so the prompt price
carries their cost, while the unit price shown stays the list price.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest
from dify_plugin.entities.model.message import UserPromptMessage

from adapters.catalog.loader import default_catalog
from tests.real_traces import needs_traces, recordings, replayed, served

MILLION = Decimal(1_000_000)


def _usage(llm, credentials, *, stream: bool, model: str = "qwen-plus", text: str = "one two three four five"):
    chunks = list(llm.invoke(model, credentials, [UserPromptMessage(content=text)], {}, stream=stream))
    return chunks[-1].delta.usage


def _prices(model: str) -> tuple[Decimal, Decimal]:
    info = default_catalog().get("llm", model).info
    return info.input_cost_per_token, info.cache_read_input_token_cost


def _expected(model: str, prompt: int, cached: int) -> Decimal:
    listed, cache = _prices(model)
    return ((prompt - cached) * listed + cached * cache).quantize(Decimal("0.0000001"))


@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "stream"])
@pytest.mark.parametrize("fault", ["cached-3", "deepseek-cached-3"], ids=["cached_tokens", "prompt_cache_hit_tokens"])
def test_cached_prompt_tokens_cost_the_cache_price(llm, gateway, stream: bool, fault: str) -> None:
    usage = _usage(llm, gateway.credentials(f"/_fault/{fault}"), stream=stream)
    assert usage.prompt_tokens == 5  # the five words; three of them served from the cache
    assert usage.prompt_price == _expected("qwen-plus", 5, 3)
    assert usage.prompt_unit_price == _prices("qwen-plus")[0] * MILLION  # the list price, as shown
    assert usage.total_price == usage.prompt_price + usage.completion_price


def test_without_cached_tokens_the_prompt_costs_the_list_price(llm, gateway) -> None:
    usage = _usage(llm, gateway.credentials(), stream=False)
    assert usage.prompt_price == _expected("qwen-plus", 5, 0)


def test_a_model_without_a_cache_price_prices_cached_tokens_as_any_other(llm, gateway) -> None:
    assert default_catalog().get("llm", "qwen-max").info.cache_read_input_token_cost is None
    cached = _usage(llm, gateway.credentials("/_fault/cached-3"), stream=False, model="qwen-max")
    plain = _usage(llm, gateway.credentials(), stream=False, model="qwen-max")
    assert cached.prompt_price == plain.prompt_price > 0


def test_cached_tokens_above_the_prompt_never_price_below_zero(llm, gateway) -> None:
    usage = _usage(llm, gateway.credentials("/_fault/cached-50"), stream=True, text="a b")
    assert usage.prompt_price == _expected("qwen-plus", 2, 2)


@needs_traces
@pytest.mark.parametrize(
    ("file", "model"), [("ds-qwenplus-json.json", "qwen-plus"), ("ds-qwen3max-text-stream.sse", "qwen3-max")]
)
def test_recorded_dashscope_usage_with_cached_tokens_is_priced_by_them(llm, file: str, model: str) -> None:
    """The recorded answers (vercel/ai fixtures, sources.json) with their cached_tokens 0 changed to 9."""
    recording = next(r for r in recordings() if r.file == file)
    body = recording.body.replace(b'"cached_tokens":0', b'"cached_tokens":9')
    assert body != recording.body
    variant = dataclasses.replace(recording, changed_body=body)
    prompt = json.loads(body)["usage"]["prompt_tokens"] if not variant.is_sse else None
    with replayed(served(variant, "/v1/chat/completions")) as credentials:
        usage = _usage(llm, credentials, stream=variant.is_sse, model=model)
    assert usage.prompt_price == _expected(model, prompt or usage.prompt_tokens, 9)
