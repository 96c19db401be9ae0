"""Qwen request options where the catalog declares them (web search with its options, parallel tool
calls, tool choice), and customizable LLMs switching them on; a model added by name prices cached
prompt tokens at the price its form gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dify_plugin.entities.model.message import PromptMessageTool, UserPromptMessage
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeBadRequestError

from adapters.catalog.loader import default_catalog

WEATHER = PromptMessageTool(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}},
)
QWEN_OPTIONS = {"enable_search", "search_options", "parallel_tool_calls", "tool_choice"}


def _chat(llm, credentials, params, *, model: str = "qwen-plus", tools=None, stream: bool = False) -> list:
    messages = [UserPromptMessage(content="weather in Hangzhou")]
    return list(llm.invoke(model, credentials, messages, params, tools=tools, stream=stream))


def _rules(llm, model: str, credentials=None) -> set[str]:
    schema = llm.get_model_schema(model, credentials)
    return {rule.name for rule in schema.parameter_rules}


def test_the_qwen_models_that_search_and_call_tools_offer_the_options(llm) -> None:
    for name in ("qwen-max", "qwen-plus", "qwen-flash", "qwen3-max"):
        assert _rules(llm, name) >= QWEN_OPTIONS, name
    assert _rules(llm, "qwen3-32b") >= {"parallel_tool_calls", "tool_choice"}
    assert not _rules(llm, "qwen-vl-max") & QWEN_OPTIONS  # no tools, no search
    assert not _rules(llm, "deepseek-r1") & QWEN_OPTIONS


def test_web_search_goes_out_with_its_options_as_an_object(llm, gateway) -> None:
    params = {"enable_search": True, "search_options": '{"forced_search": true, "search_strategy": "turbo"}'}
    _chat(llm, gateway.credentials(), params)
    body = gateway.last_json()
    assert body["enable_search"] is True
    assert body["search_options"] == {"forced_search": True, "search_strategy": "turbo"}


@pytest.mark.parametrize(("value", "problem"), [("{forced_search}", "not valid JSON"), ("[1]", "a JSON object")])
def test_search_options_that_are_not_a_json_object_are_a_bad_request(llm, gateway, value: str, problem: str) -> None:
    with pytest.raises(InvokeBadRequestError, match=f"parameter search_options .*{problem}"):
        _chat(llm, gateway.credentials(), {"search_options": value})
    assert gateway.emulator.received == []


def test_tool_options_go_out_only_with_tools(llm, gateway) -> None:
    params = {"tool_choice": "none", "parallel_tool_calls": True}
    _chat(llm, gateway.credentials(), params)
    assert not {"tool_choice", "parallel_tool_calls"} & set(gateway.last_json())
    chunks = _chat(llm, gateway.credentials(), params, tools=[WEATHER], stream=True)
    body = gateway.last_json()
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("none", True)
    assert not any(c.delta.message.tool_calls for c in chunks)  # "none": the model answers in words


def test_options_a_model_does_not_declare_are_never_sent(llm, gateway) -> None:
    _chat(llm, gateway.credentials(), {"enable_search": True, "tool_choice": "auto"}, model="deepseek-r1")
    assert not {"enable_search", "tool_choice"} & set(gateway.last_json())


def test_a_model_added_by_name_switches_the_options_on_in_its_form(llm, gateway) -> None:
    form = gateway.credentials(
        function_calling_type="tool_call", model_options="extra_params=enable_search, search_options, tool_choice"
    )
    assert _rules(llm, "team-qwen", form) >= {"enable_search", "search_options", "tool_choice"}
    assert "parallel_tool_calls" not in _rules(llm, "team-qwen", form)
    params = {"enable_search": True, "search_options": '{"forced_search": true}', "tool_choice": "required"}
    _chat(llm, form, params, model="team-qwen", tools=[WEATHER])
    body = gateway.last_json()
    assert (body["enable_search"], body["search_options"], body["tool_choice"]) == (
        True,
        {"forced_search": True},
        "required",
    )
    assert not QWEN_OPTIONS & set(_rules(llm, "team-plain", gateway.credentials()))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("extra_params=enable_serch", "extra_params: unknown option 'enable_serch'; options are "),
        ("extra_params=enable_thinking", "unknown option 'enable_thinking'"),  # chosen by Thinking mode
        ("extra_params=temperature", "unknown option 'temperature'"),  # offered to every model anyway
        ("cache_read_price=0.1", "cache_read_price is used only with input_price"),
    ],
)
def test_a_bad_llm_option_names_the_field(llm, gateway, options: str, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.get_customizable_model_schema("team-qwen", gateway.credentials(model_options=options))
    assert str(caught.value).startswith("Credential field 'model_options': ") and problem in str(caught.value)


def test_a_model_added_by_name_prices_cached_tokens_at_its_cache_price(llm, gateway) -> None:
    form = gateway.credentials(
        "/_fault/cached-4", model_options="input_price=2; output_price=8; cache_read_price=0.5; currency=USD"
    )
    usage = _chat(llm, form, {}, model="team-qwen")[-1].delta.usage
    assert usage.prompt_tokens == 3 and usage.prompt_unit_price == Decimal(2)  # "weather in Hangzhou"
    assert usage.prompt_price == Decimal("0.0000015")  # all 3 cached (4 reported, capped): 3 * 0.5 / 1M
    assert usage.currency == "USD"
    assert default_catalog().get("llm", "team-qwen") is None
