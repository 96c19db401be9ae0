"""LLM conversations replayed from cassettes (recorded against the emulator or a real gateway).

Assertions hold for any gateway's answers: they check what Dify receives (complete text, whole tool
calls, thinking markup, priced usage), not the emulator's exact words.
"""

from __future__ import annotations

import json

import pytest
from dify_plugin.entities.model.message import PromptMessageTool, UserPromptMessage
from dify_plugin.errors.model import InvokeAuthorizationError

from tests.cassettes import LIVE_ENDPOINT, recorded

WEATHER = PromptMessageTool(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)


def _emulator_credentials(request: pytest.FixtureRequest, base_path: str = "") -> dict[str, str] | None:
    """The emulator's credentials when recording without a live gateway (the emulator starts only then)."""
    from tests.cassettes import RECORDING

    if not RECORDING or LIVE_ENDPOINT:
        return None
    return request.getfixturevalue("gateway").credentials(base_path)


def _invoke(llm, credentials, text: str, *, stream: bool, model: str = "qwen-plus", **kwargs) -> list:
    return list(
        llm.invoke(model, credentials, [UserPromptMessage(content=text)], {"max_tokens": 200}, stream=stream, **kwargs)
    )


@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "streaming"])
def test_chat(llm, request, stream: bool) -> None:
    with recorded(f"llm/chat_{'stream' if stream else 'blocking'}", _emulator_credentials(request)) as credentials:
        chunks = _invoke(llm, credentials, "Say hello to the gateway", stream=stream)
    text = "".join(c.delta.message.content for c in chunks)
    assert text.strip()
    usage = chunks[-1].delta.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_price > 0 and usage.currency == "RMB"


def test_streamed_tool_call(llm, request) -> None:
    with recorded("llm/tool_call_stream", _emulator_credentials(request)) as credentials:
        chunks = _invoke(llm, credentials, "What is the weather in Hangzhou?", stream=True, tools=[WEATHER])
    calls = [call for c in chunks for call in c.delta.message.tool_calls]
    assert len(calls) == 1
    assert calls[0].id and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments), dict)


def test_reasoning_stream(llm, request) -> None:
    with recorded("llm/reasoning_stream", _emulator_credentials(request)) as credentials:
        chunks = _invoke(llm, credentials, "Is 17 prime?", stream=True, model="qwq-plus")
    text = "".join(c.delta.message.content for c in chunks)
    assert text.startswith("<think>\n") and "\n</think>" in text
    assert text.split("\n</think>", 1)[1].strip(), "an answer follows the thinking"


def test_rejected_key(llm, request) -> None:
    with (
        recorded("llm/rejected_key", _emulator_credentials(request)) as credentials,
        pytest.raises(InvokeAuthorizationError, match=r"Unauthorized consumer|401|403"),
    ):
        _invoke(llm, {**credentials, "api_key": "sk-not-a-consumer"}, "hi", stream=False)
