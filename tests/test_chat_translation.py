"""Pure translation tests: Dify messages → request body, gateway answers → Dify chunks (no network)."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from dify_plugin.entities.model.message import (
    AudioPromptMessageContent,
    DocumentPromptMessageContent,
    TextPromptMessageContent,
    UserPromptMessage,
    VideoPromptMessageContent,
)
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.catalog.loader import default_catalog
from adapters.dialects.kinds import ChatDialect
from adapters.dialects.registry import dialect
from adapters.engine.litellm_facade import ToolCallPart
from adapters.models.llm.answer import BLOCK_MARK, ThinkingWrapper, ToolCallAssembler, deny_text, relay_stream
from adapters.models.llm.request import build_chat_request, to_openai_messages
from adapters.models.llm.streaming import Streaming, plan_streaming
from adapters.models.usage import estimate_tokens, llm_usage

CATALOG = default_catalog()
QWEN_MAX = CATALOG.get("llm", "qwen-max")
CHAT = dialect(ChatDialect, "openai")
_REQUEST = httpx.Request("POST", "http://gw/v1/chat/completions")


def _sse(*events: dict, done: bool = True) -> httpx.Response:
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ("data: [DONE]\n\n" if done else "")
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode(), request=_REQUEST)


def _delta(**delta) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": delta}]}


def test_multimodal_parts_are_sent_only_where_the_model_declares_them() -> None:
    omni = dataclasses.replace(
        QWEN_MAX,
        info=dataclasses.replace(
            QWEN_MAX.info, supports_video_input=True, supports_audio_input=True, supports_pdf_input=True
        ),
    )
    content = [
        TextPromptMessageContent(data="look"),
        VideoPromptMessageContent(format="mp4", url="https://cdn/v.mp4", mime_type="video/mp4"),
        AudioPromptMessageContent(format="wav", base64_data="UklGRg==", mime_type="audio/wav"),
        DocumentPromptMessageContent(
            format="pdf", base64_data="JVBERi0=", mime_type="application/pdf", filename="a.pdf"
        ),
    ]
    parts = to_openai_messages(omni, [UserPromptMessage(content=content)])[0]["content"]
    assert parts[1] == {"type": "video_url", "video_url": {"url": "https://cdn/v.mp4"}}
    assert parts[2] == {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    assert parts[3] == {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    with pytest.raises(InvokeBadRequestError, match="does not accept video"):
        to_openai_messages(QWEN_MAX, [UserPromptMessage(content=content)])


def test_tools_are_refused_for_a_model_without_function_calling() -> None:
    from dify_plugin.entities.model.message import PromptMessageTool

    no_tools = dataclasses.replace(QWEN_MAX, info=dataclasses.replace(QWEN_MAX.info, supports_function_calling=False))
    tool = PromptMessageTool(name="f", description="d", parameters={})
    with pytest.raises(InvokeBadRequestError, match="does not support function calling"):
        build_chat_request(no_tools, CATALOG, [UserPromptMessage(content="hi")], {}, [tool], None, True)


@pytest.mark.parametrize(
    ("stream_only", "streams_tool_calls", "dify_stream", "with_tools", "on_wire"),
    [
        (False, True, True, True, True),
        (False, True, False, True, False),
        # Tools for a backend that cannot stream tool calls: one complete answer, relayed as a stream.
        (False, False, True, True, False),
        (False, False, True, False, True),
        # A stream-only model is streamed on the wire for a blocking call too, and collected.
        (True, True, False, False, True),
        (True, False, False, True, False),
    ],
)
def test_one_function_decides_how_the_gateway_is_asked_and_dify_answered(
    stream_only: bool, streams_tool_calls: bool, dify_stream: bool, with_tools: bool, on_wire: bool
) -> None:
    info = dataclasses.replace(QWEN_MAX.info, stream_only=stream_only, streams_tool_calls=streams_tool_calls)
    assert plan_streaming(info, dify_stream=dify_stream, with_tools=with_tools) == Streaming(on_wire, dify_stream)


def test_the_body_asks_for_a_stream_with_usage_only_when_told() -> None:
    streamed = build_chat_request(QWEN_MAX, CATALOG, [UserPromptMessage(content="hi")], {}, None, None, True)
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    blocking = build_chat_request(QWEN_MAX, CATALOG, [UserPromptMessage(content="hi")], {}, None, None, False)
    assert "stream" not in blocking and "stream_options" not in blocking


def test_bad_json_schema_is_a_bad_request_naming_the_parameter() -> None:
    params = {"response_format": "json_schema", "json_schema": "{not json"}
    with pytest.raises(InvokeBadRequestError, match="json_schema is not valid JSON"):
        build_chat_request(QWEN_MAX, CATALOG, [UserPromptMessage(content="hi")], params, None, None, False)


def test_thinking_wrapper_closes_when_the_answer_starts_or_the_stream_ends() -> None:
    wrapper = ThinkingWrapper()
    assert wrapper.feed("let me", None) == "<think>\nlet me"
    assert wrapper.feed(" think", None) == " think"
    assert wrapper.feed(None, "Answer") == "\n</think>Answer"
    assert wrapper.close() == ""
    unfinished = ThinkingWrapper()
    unfinished.feed("only thoughts", None)
    assert unfinished.close() == "\n</think>"


def test_tool_call_fragments_are_assembled_per_index_without_repeating_names() -> None:
    tools = ToolCallAssembler()
    tools.add((ToolCallPart(0, "call_a", "search", ""), ToolCallPart(1, "call_b", "lookup", '{"id"')))
    tools.add((ToolCallPart(0, None, "search", '{"q":'), ToolCallPart(1, None, None, ": 7}")))
    tools.add((ToolCallPart(0, None, None, '"tea"}'),))
    calls = tools.complete()
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_a", "search", {"q": "tea"}),
        ("call_b", "lookup", {"id": 7}),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("很抱歉，我无法回答您的问题", f"{BLOCK_MARK} 很抱歉，我无法回答您的问题"),
        (
            json.dumps(
                {"code": 200, "denyMessage": "Blocked.", "blockedDetails": [{"type": "prompt", "level": "high"}]}
            ),
            f"{BLOCK_MARK} Blocked. (code 200, prompt/high)",
        ),
    ],
)
def test_deny_text_is_marked_and_readable(raw: str, expected: str) -> None:
    assert deny_text(raw) == expected


def test_usage_is_estimated_offline_only_when_the_gateway_sends_none() -> None:
    seen = []

    def usage_for(counts, text):
        prompt, completion = counts.prompt, counts.completion
        seen.append((prompt, completion))
        return llm_usage(
            QWEN_MAX,
            prompt if prompt is not None else 9,
            completion if completion is not None else estimate_tokens(QWEN_MAX, text=text),
            0.0,
        )

    chunks = list(
        relay_stream(
            QWEN_MAX, CHAT, _sse(_delta(content="hello world, how are you")), "/v1/chat/completions", usage_for
        )
    )
    assert seen == [(None, None)]
    assert chunks[-1].delta.usage.completion_tokens >= 5


def test_a_stream_without_done_is_an_error_not_a_short_answer() -> None:
    from dify_plugin.errors.model import InvokeServerUnavailableError

    stream = relay_stream(
        QWEN_MAX, CHAT, _sse(_delta(content="partial"), done=False), "/v1/chat/completions", lambda *a: None
    )
    with pytest.raises(InvokeServerUnavailableError, match="before \\[DONE\\]"):
        list(stream)


def test_event_lines_without_a_space_after_data_are_read() -> None:
    body = b'data:{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body, request=_REQUEST)
    usage = llm_usage(QWEN_MAX, 1, 1, 0.0)
    chunks = list(relay_stream(QWEN_MAX, CHAT, response, "/v1/chat/completions", lambda *a: usage))
    assert "".join(c.delta.message.content for c in chunks) == "hi"
