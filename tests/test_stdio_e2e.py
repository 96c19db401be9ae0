"""The plugin end to end, started exactly as Dify's daemon starts it: `python -m main` over stdio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.conftest import PLUGIN_ROOT, TEST_KEY, Gateway
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data, prompt_message

PROVIDER = "aliyun_ai_gateway"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def plugin() -> Iterator[PluginProcess]:
    with PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as process:
        yield process


def _chat(
    plugin: PluginProcess, credentials: dict, text: str, *, stream: bool, model: str = "qwen-plus", **data
) -> list:
    return plugin.request(
        "invoke_llm",
        chat_data(PROVIDER, model, credentials, text, stream=stream, model_parameters={"temperature": 0.1}, **data),
    )


def _text(items: list) -> str:
    return "".join(item["delta"]["message"]["content"] or "" for item in items)


def test_start_up_is_quick_and_announces_the_manifest(plugin: PluginProcess) -> None:
    assert plugin.manifest is not None and plugin.manifest.get("name") == "aliyun_ai_gateway"
    assert plugin.startup_seconds_to_heartbeat < 10


def test_provider_credentials_are_checked_with_a_real_call(plugin: PluginProcess, gateway: Gateway) -> None:
    result = plugin.request(
        "validate_provider_credentials",
        {"provider": PROVIDER, "credentials": gateway.credentials(validate_model="qwen-turbo")},
    )
    assert result[-1]["result"] is True
    assert gateway.last_json()["model"] == "qwen-turbo"


def test_wrong_key_fails_validation_with_the_gateways_reason(plugin: PluginProcess, gateway: Gateway) -> None:
    credentials = {**gateway.credentials(), "api_key": "sk-nobody"}
    with pytest.raises(PluginSessionError) as caught:
        plugin.request("validate_provider_credentials", {"provider": PROVIDER, "credentials": credentials})
    assert caught.value.error_type == "CredentialsValidateFailedError"
    assert "Unauthorized consumer" in caught.value.message
    assert "sk-nobody" not in caught.value.message


def test_schemas_are_served_for_catalog_and_customizable_models(plugin: PluginProcess, gateway: Gateway) -> None:
    catalog = plugin.request(
        "get_ai_model_schemas",
        {"provider": PROVIDER, "model_type": "llm", "model": "qwen-plus", "credentials": gateway.credentials()},
    )[-1]["model_schema"]
    rules = {rule["name"] for rule in catalog["parameter_rules"]}
    assert {"temperature", "max_tokens", "enable_thinking"} <= rules
    assert Decimal(catalog["pricing"]["input"]) > 0

    custom = plugin.request(
        "get_ai_model_schemas",
        {
            "provider": PROVIDER,
            "model_type": "llm",
            "model": "team-model",
            "credentials": gateway.credentials(context_size="65536", function_calling_type="tool_call"),
        },
    )[-1]["model_schema"]
    assert custom["model_properties"]["context_size"] == 65536
    assert "tool-call" in custom["features"]


def test_blocking_chat(plugin: PluginProcess, gateway: Gateway) -> None:
    items = _chat(plugin, gateway.credentials(), "hello from dify", stream=False)
    assert len(items) == 1
    assert _text(items) == "echo: hello from dify"
    assert items[0]["delta"]["usage"]["total_tokens"] == 3 + 4


def test_streaming_chat(plugin: PluginProcess, gateway: Gateway) -> None:
    items = _chat(plugin, gateway.credentials(), "one two three four", stream=True)
    assert len(items) > 3
    assert _text(items) == "echo: one two three four"
    assert items[-1]["delta"]["finish_reason"] == "stop"
    assert gateway.emulator.received[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_streamed_tool_call_arrives_whole(plugin: PluginProcess, gateway: Gateway) -> None:
    items = _chat(plugin, gateway.credentials(), "weather in Beijing", stream=True, tools=[WEATHER])
    calls = [call for item in items for call in item["delta"]["message"]["tool_calls"]]
    assert len(calls) == 1
    assert json.loads(calls[0]["function"]["arguments"]) == {"query": "weather in Beijing"}


def test_errors_reach_dify_as_invoke_errors_before_and_during_a_stream(plugin: PluginProcess, gateway: Gateway) -> None:
    with pytest.raises(PluginSessionError) as before:
        _chat(plugin, gateway.credentials("/_fault/status-429"), "hi", stream=True)
    assert before.value.error_type == "InvokeRateLimitError"
    assert "retry after 7 s" in (before.value.description or "")

    with pytest.raises(PluginSessionError) as during:
        _chat(plugin, gateway.credentials("/_fault/sseerror"), "a b c d e f", stream=True)
    # Raised inside the relayed generator, which the SDK does not map: the adapter must have.
    assert during.value.error_type == "InvokeServerUnavailableError"


def test_token_count(plugin: PluginProcess, gateway: Gateway) -> None:
    result = plugin.request(
        "get_llm_num_tokens",
        {
            "provider": PROVIDER,
            "model_type": "llm",
            "model": "qwen-plus",
            "credentials": gateway.credentials(),
            "prompt_messages": [prompt_message("user", "count these words please")],
        },
    )
    assert 4 <= result[-1]["num_tokens"] <= 20
