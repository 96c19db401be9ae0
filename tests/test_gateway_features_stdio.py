"""The gateway features, each driven as Dify's daemon drives the plugin (`python -m main` over stdio):
failover across consumer keys, request attribution, extra headers, AI-cache control, cached-token
pricing, model discovery at validation and the Qwen request options."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.catalog.loader import default_catalog
from tests.conftest import OTHER_KEY, PLUGIN_ROOT, TEST_KEY, Gateway
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data

PROVIDER = "aliyun_ai_gateway"
ATTRIBUTION = ("x-dify-app-id", "x-dify-conversation-id", "x-dify-message-id", "x-dify-end-user-id")


@pytest.fixture(scope="module")
def plugin() -> Iterator[PluginProcess]:
    with PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as process:
        yield process


def _chat(plugin: PluginProcess, credentials: dict, *, text: str = "hi", params: dict | None = None, **request):
    data = chat_data(PROVIDER, "qwen-plus", credentials, text, stream=True, model_parameters=params or {})
    return plugin.request("invoke_llm", data, **request)


def _text(items: list) -> str:
    return "".join(item["delta"]["message"]["content"] or "" for item in items)


def test_a_spent_key_fails_over_to_the_next(plugin: PluginProcess, gateway: Gateway) -> None:
    gateway.emulator.fault_consumer("team-a", "status-429")
    items = _chat(plugin, gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}", max_retries="1"))
    assert _text(items) == "echo: hi"
    assert [(r.consumer, r.status) for r in gateway.emulator.received] == [("team-a", 429), ("team-b", 200)]


def test_attribution_sends_the_ids_the_daemon_gives_the_invocation(plugin: PluginProcess, gateway: Gateway) -> None:
    invocation = {"app_id": "app-1", "conversation_id": "conv-2", "message_id": "msg-3"}
    _chat(plugin, gateway.credentials(), invocation=invocation, user_id="end-user-5")
    assert not set(ATTRIBUTION) & set(gateway.emulator.received[-1].headers)  # off by default
    _chat(plugin, gateway.credentials(request_attribution="on"), invocation=invocation, user_id="end-user-5")
    headers = gateway.emulator.received[-1].headers
    assert [headers.get(name) for name in ATTRIBUTION] == ["app-1", "conv-2", "msg-3", "end-user-5"]


def test_extra_headers_of_the_credential_and_of_the_call(plugin: PluginProcess, gateway: Gateway) -> None:
    credentials = gateway.credentials(extra_headers='{"X-Route": "team-a", "X-Tier": "silver"}')
    _chat(plugin, credentials, params={"extra_headers": "X-Tier: gold"})
    headers = gateway.emulator.received[-1].headers
    assert (headers["x-route"], headers.get_list("x-tier")) == ("team-a", ["gold"])
    with pytest.raises(PluginSessionError) as caught:
        _chat(plugin, credentials, params={"extra_headers": "Authorization: Bearer forged"})
    assert caught.value.error_type == "InvokeBadRequestError" and "'Authorization'" in caught.value.message
    assert "forged" not in caught.value.message


def test_a_cache_hit_has_zero_usage_and_skipping_the_cache_asks_afresh(plugin: PluginProcess, gateway: Gateway) -> None:
    credentials = gateway.credentials("/_fault/ai-cache")
    first = _chat(plugin, credentials, text="what is higress")
    hit = _chat(plugin, credentials, text="what is higress")
    assert _text(hit) == _text(first) and hit[-1]["delta"]["usage"]["total_tokens"] == 0
    fresh = _chat(plugin, credentials, text="what is higress", params={"skip_gateway_cache": True})
    assert fresh[-1]["delta"]["usage"]["total_tokens"] > 0
    assert gateway.emulator.received[-1].headers["x-higress-skip-ai-cache"] == "on"


def test_cached_prompt_tokens_are_priced_at_the_cache_price(plugin: PluginProcess, gateway: Gateway) -> None:
    info = default_catalog().get("llm", "qwen-plus").info
    usage = _chat(plugin, gateway.credentials("/_fault/cached-3"), text="one two three four five")[-1]["delta"]["usage"]
    expected = 2 * info.input_cost_per_token + 3 * info.cache_read_input_token_cost
    assert Decimal(str(usage["prompt_price"])) == expected.quantize(Decimal("0.0000001"))
    assert Decimal(str(usage["prompt_unit_price"])) == info.input_cost_per_token * 1_000_000


def test_validation_looks_the_model_up_in_the_gateways_list(plugin: PluginProcess, gateway: Gateway) -> None:
    gateway.emulator.serve_models(["qwen-plus", "qwen-max"])
    data = {"provider": PROVIDER, "model_type": "llm", "model": "qwen-pluss", "credentials": gateway.credentials()}
    with pytest.raises(PluginSessionError) as caught:
        plugin.request("validate_model_credentials", data)
    assert caught.value.error_type == "CredentialsValidateFailedError"
    assert "closest listed: qwen-plus" in caught.value.message
    assert [r.method for r in gateway.emulator.received] == ["GET"]


def test_web_search_options_reach_the_gateway(plugin: PluginProcess, gateway: Gateway) -> None:
    params = {"enable_search": True, "search_options": '{"forced_search": true}'}
    _chat(plugin, gateway.credentials(), params=params)
    body = gateway.last_json()
    assert (body["enable_search"], body["search_options"]) == (True, {"forced_search": True})
