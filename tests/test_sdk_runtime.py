"""The stdio speed-ups change no byte the daemon receives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dify_plugin.core.server.__base.response_writer import ResponseWriter
from dify_plugin.entities.model.llm import LLMResultChunk, LLMResultChunkDelta, LLMUsage
from dify_plugin.entities.model.message import AssistantPromptMessage

from adapters.runtime.sdk_runtime import chunk_message_json

ToolCall = AssistantPromptMessage.ToolCall


class _Collect(ResponseWriter):
    """The SDK's own serialization path, writing into a list instead of stdout."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def write(self, data: str) -> None:
        self.out.append(data)

    def done(self) -> None:
        pass


def _chunk(**delta) -> LLMResultChunk:
    return LLMResultChunk(model="qwen-plus", delta=LLMResultChunkDelta(index=3, **delta))


USAGE = LLMUsage(
    prompt_tokens=5,
    prompt_unit_price=Decimal("0.8"),
    prompt_price_unit=Decimal("0.000001"),
    prompt_price=Decimal("0.0000040"),
    completion_tokens=7,
    completion_unit_price=Decimal("2"),
    completion_price_unit=Decimal("0.000001"),
    completion_price=Decimal("0.0000140"),
    total_tokens=12,
    total_price=Decimal("0.0000180"),
    currency="RMB",
    latency=0.25,
)
CHUNKS = [
    _chunk(message=AssistantPromptMessage(content="plain text")),
    _chunk(message=AssistantPromptMessage(content='<think>\n引号 "quotes" \\ \u2028 emoji 🙂\n</think>')),
    _chunk(
        message=AssistantPromptMessage(
            content="",
            tool_calls=[
                ToolCall(
                    id="call_1",
                    type="function",
                    function=ToolCall.ToolCallFunction(name="get_weather", arguments='{"q": "杭州"}'),
                )
            ],
        ),
        usage=USAGE,
        finish_reason="tool_calls",
    ),
]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("session_id", ["6f1c9a2e-0000-4000-8000-000000000001", None])
def test_fast_chunk_message_equals_the_sdks(chunk: LLMResultChunk, session_id: str | None) -> None:
    writer = _Collect()
    writer.session_message(session_id, writer.stream_object(chunk))
    assert writer.out == [chunk_message_json(session_id, chunk), "\n\n"]
