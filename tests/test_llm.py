"""The LLM adapter against the gateway emulator: what Dify receives, and what the gateway receives."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from dify_plugin.entities.model.message import (
    AssistantPromptMessage,
    ImagePromptMessageContent,
    PromptMessageTool,
    SystemPromptMessage,
    TextPromptMessageContent,
    ToolPromptMessage,
    UserPromptMessage,
)
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.catalog.loader import default_catalog
from adapters.models.llm.answer import BLOCK_MARK
from tests.conftest import TEST_KEY

WEATHER = PromptMessageTool(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)


def _text(chunks: list) -> str:
    return "".join(c.delta.message.content or "" for c in chunks)


def _chat(llm, credentials, text: str, *, model: str = "qwen-max", stream: bool, params=None, **kwargs) -> list:
    return list(
        llm.invoke(model, credentials, [UserPromptMessage(content=text)], params or {}, stream=stream, **kwargs)
    )


@pytest.mark.parametrize("stream", [False, True])
def test_chat_answer_usage_and_price(llm, gateway, stream: bool) -> None:
    chunks = _chat(llm, gateway.credentials(), "hello there gateway", stream=stream, params={"temperature": 0.2})
    assert _text(chunks) == "echo: hello there gateway"
    usage = chunks[-1].delta.usage
    # The emulator counts words: 3 prompt words, 4 answer words.
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    model = default_catalog().get("llm", "qwen-max")
    assert usage.prompt_price == 3 * model.info.input_cost_per_token
    assert usage.completion_price == 4 * model.info.output_cost_per_token
    assert usage.currency == model.info.currency
    sent = gateway.last_json()
    assert sent["model"] == "qwen-max" and sent["temperature"] == 0.2
    assert gateway.emulator.received[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    if stream:
        assert len(chunks) > 2, "a streamed answer arrives in several chunks"
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_base_path_and_gateway_model_name(llm, gateway) -> None:
    credentials = gateway.credentials("/team-a", endpoint_model_name="qwen-max-2025-01-25")
    _chat(llm, credentials, "hi", stream=False)
    received = gateway.emulator.received[-1]
    assert received.path == "/team-a/v1/chat/completions"
    assert received.json()["model"] == "qwen-max-2025-01-25"


@pytest.mark.parametrize("stream", [False, True])
def test_no_messages_is_a_bad_request_before_any_request(llm, gateway, stream: bool) -> None:
    with pytest.raises(InvokeBadRequestError, match=r"qwen-max.*no messages"):
        list(llm.invoke("qwen-max", gateway.credentials(), [], {}, stream=stream))
    assert gateway.emulator.received == []


def test_empty_endpoint_model_name_sends_the_dify_model_name(llm, gateway) -> None:
    _chat(llm, gateway.credentials(endpoint_model_name="  "), "hi", model="my-custom-model", stream=False)
    assert gateway.last_json()["model"] == "my-custom-model"


def test_completion_mode_uses_the_completions_route(llm, gateway) -> None:
    credentials = gateway.credentials(mode="completion")
    chunks = _chat(llm, credentials, "write a haiku", model="my-base-model", stream=True)
    assert _text(chunks) == "echo: write a haiku"
    assert gateway.emulator.received[-1].path == "/v1/completions"
    assert gateway.last_json()["prompt"] == "write a haiku"


def test_streamed_tool_calls_reach_dify_complete(llm, gateway) -> None:
    chunks = _chat(llm, gateway.credentials(), "weather in Hangzhou", stream=True, tools=[WEATHER])
    calls = [call for c in chunks for call in c.delta.message.tool_calls]
    # The emulator streams the arguments in 5-character fragments; Dify must get one whole call.
    assert len(calls) == 1
    assert calls[0].id and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"query": "weather in Hangzhou"}
    assert chunks[-1].delta.finish_reason == "tool_calls"
    assert gateway.last_json()["tools"][0]["function"]["name"] == "get_weather"


def test_tool_results_round_trip(llm, gateway) -> None:
    call = AssistantPromptMessage.ToolCall(
        id="call_7",
        type="function",
        function=AssistantPromptMessage.ToolCall.ToolCallFunction(name="get_weather", arguments='{"query":"x"}'),
    )
    messages = [
        SystemPromptMessage(content="be brief"),
        UserPromptMessage(content="weather?"),
        AssistantPromptMessage(content="<think>\nplanning\n</think>", tool_calls=[call]),
        ToolPromptMessage(content="sunny, 21C", tool_call_id="call_7"),
    ]
    result = list(llm.invoke("qwen-max", gateway.credentials(), messages, {}, tools=[WEATHER], stream=False))
    assert result[0].delta.message.content == "echo: tool result: sunny, 21C"
    sent = gateway.last_json()["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,  # the earlier thinking is not sent back
        "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"query":"x"}'}}
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21C"}


def test_images_go_to_vision_models_and_are_refused_by_others(llm, gateway) -> None:
    image = ImagePromptMessageContent(format="png", base64_data="iVBORw0KGgo=", mime_type="image/png")
    message = UserPromptMessage(content=[TextPromptMessageContent(data="what is this"), image])
    result = list(llm.invoke("qwen-vl-max", gateway.credentials(), [message], {}, stream=False))
    assert result[0].delta.message.content == "echo: what is this [images: 1]"
    part = gateway.last_json()["messages"][0]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    with pytest.raises(InvokeBadRequestError, match="does not accept images"):
        list(llm.invoke("qwen-max", gateway.credentials(), [message], {}, stream=False))


def test_structured_output_is_sent_natively(llm, gateway) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    params = {"response_format": "json_schema", "json_schema": json.dumps(schema)}
    chunks = _chat(llm, gateway.credentials(), "structured please", model="qwen-plus", stream=False, params=params)
    assert json.loads(_text(chunks)) == {"echo": "structured please"}
    assert gateway.last_json()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_is_shown_as_thinking(llm, gateway, stream: bool) -> None:
    chunks = _chat(llm, gateway.credentials(), "why is the sky blue", model="qwq-plus", stream=stream)
    assert _text(chunks) == "<think>\nthinking about: why is the sky blue\n</think>echo: why is the sky blue"


def test_thinking_switch_is_sent_only_to_models_that_declare_it(llm, gateway) -> None:
    _chat(llm, gateway.credentials(), "hi", model="qwen-plus", stream=False, params={"enable_thinking": False})
    assert gateway.last_json()["enable_thinking"] is False
    # Dify drops parameters a model has no rule for; even if one slipped through, it is not sent.
    _chat(llm, gateway.credentials(), "hi", model="qwen-max", stream=False, params={"enable_thinking": True})
    assert "enable_thinking" not in gateway.last_json()


def test_customizable_model_thinking_field_follows_its_credentials(llm, gateway) -> None:
    credentials = gateway.credentials(agent_though_support="supported", thinking_param="chat_template_enable_thinking")
    chunks = _chat(
        llm, credentials, "hi", model="vllm-qwen3", stream=True, params={"chat_template_enable_thinking": True}
    )
    assert gateway.last_json()["chat_template_kwargs"] == {"enable_thinking": True}
    assert _text(chunks).startswith("echo: hi")


@pytest.mark.parametrize("stream", [False, True])
def test_content_security_block_reaches_the_user_marked(llm, gateway, stream: bool) -> None:
    chunks = _chat(llm, gateway.credentials(), "please BLOCK_ME now", stream=stream)
    text = _text(chunks)
    assert text.startswith(BLOCK_MARK)
    # Higress' current deny body: the risk type and level, and the id the gateway operator looks up
    assert re.search(r"\(contentModeration/high, request id 00000000-0000-4000-8000-\d{12}\)$", text), text
    older = _chat(llm, gateway.credentials("/_fault/guard-deny-text"), "please BLOCK_ME now", stream=stream)
    assert _text(older) == f"{BLOCK_MARK} 很抱歉，我无法回答您的问题"


def test_block_during_a_stream_keeps_what_was_delivered(llm, gateway) -> None:
    chunks = _chat(llm, gateway.credentials(), "tell me BLOCK_MIDSTREAM things", stream=True)
    text = _text(chunks)
    before, _, after = text.partition(BLOCK_MARK)
    assert before.startswith("echo:") and after


def test_customizable_model_prices_from_its_credentials(llm, gateway) -> None:
    credentials = gateway.credentials(input_price="2", output_price="8", currency="USD")
    usage = _chat(llm, credentials, "one two", model="priced-model", stream=False)[-1].delta.usage
    assert usage.prompt_price == Decimal(2) * 2 / 1_000_000
    assert usage.currency == "USD"


def test_token_counting_is_offline(llm, gateway) -> None:
    count = llm.get_num_tokens("qwen-max", gateway.credentials(), [UserPromptMessage(content="hello world " * 20)])
    assert 20 <= count <= 60
    assert gateway.emulator.received == []


@pytest.mark.parametrize("model", ["qwq-plus", "qwen3-32b"])
def test_stream_only_models_are_streamed_even_for_a_blocking_call(llm, gateway, model: str) -> None:
    chunks = _chat(llm, gateway.credentials(), "is seven prime", model=model, stream=False)
    assert len(chunks) == 1, "Dify still gets one blocking answer"
    assert gateway.last_json()["stream"] is True
    assert chunks[0].delta.message.content.endswith("echo: is seven prime")
    assert chunks[0].delta.usage.total_tokens > 0


def test_an_always_thinking_customizable_model_is_streamed(llm, gateway) -> None:
    credentials = gateway.credentials(agent_though_support="only_thinking_supported")
    llm.validate_credentials("qwq-32b", credentials)
    assert gateway.last_json()["stream"] is True
