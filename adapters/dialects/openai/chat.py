"""OpenAI chat completions (`/v1/chat/completions`), through LiteLLM's chat translation for the route's provider.

Dify's messages become OpenAI messages: text and image, video, audio and file parts, assistant
tool calls, tool results, and developer messages as system ones (most backends know only
"system"). Tools become function tools; a streamed request asks for its usage
(`stream_options.include_usage`). LiteLLM maps the parameters and builds the body, and reads the
answer and each stream event (reasoning from `reasoning_content` or `reasoning`); the token counts,
cached prompt tokens included, are read here (`token_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from dify_plugin.entities.model.message import (
    AssistantPromptMessage,
    AudioPromptMessageContent,
    DocumentPromptMessageContent,
    ImagePromptMessageContent,
    PromptMessage,
    PromptMessageContentType,
    PromptMessageTool,
    SystemPromptMessage,
    ToolPromptMessage,
    UserPromptMessage,
    VideoPromptMessageContent,
)

from adapters.dialects.answers import json_answer, route_path, unusable_answer
from adapters.dialects.kinds import ChatAnswer, ChatChunk, ChatDialect, TokenCounts
from adapters.engine.litellm_facade import ChatTurn, chat_request_body, parse_chat_answer, parse_chat_chunk
from adapters.gateway.errors import field_names, stream_error


def _media_part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePromptMessageContent):
        return {"type": "image_url", "image_url": {"url": part.data, "detail": part.detail.value}}
    if isinstance(part, VideoPromptMessageContent):
        return {"type": "video_url", "video_url": {"url": part.data}}
    if isinstance(part, AudioPromptMessageContent):
        if part.url:
            return {"type": "audio_url", "audio_url": {"url": part.url}}
        return input_audio_part(part.base64_data, part.format)
    if isinstance(part, DocumentPromptMessageContent):
        file: dict[str, Any] = {"file_data": part.data}
        if part.filename:
            file["filename"] = part.filename
        return {"type": "file", "file": file}
    # models/llm/request.py refuses other parts before a body is built.
    raise TypeError(f"no OpenAI form for a {type(part).__name__} message part")


def input_audio_part(data: str, audio_format: str | None = None) -> dict[str, Any]:
    """An `input_audio` content part: `data` is base64 beside its `audio_format` (OpenAI's form), or
    a data URL with the MIME type in it (the form Qwen's ASR and Omni models take)."""
    audio = {"data": data, "format": audio_format} if audio_format else {"data": data}
    return {"type": "input_audio", "input_audio": audio}


def _content(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    return [
        {"type": "text", "text": part.data} if part.type == PromptMessageContentType.TEXT else _media_part(part)
        for part in content
    ]


def openai_messages(messages: Sequence[PromptMessage]) -> list[dict[str, Any]]:
    """Dify's messages in OpenAI's chat form (also what LiteLLM's token counter reads)."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AssistantPromptMessage):
            item: dict[str, Any] = {"role": "assistant", "content": _content(message.content) or None}
            if message.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in message.tool_calls
                ]
            converted.append(item)
        elif isinstance(message, ToolPromptMessage):
            content = _content(message.content)
            converted.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": content})
        elif isinstance(message, UserPromptMessage):
            converted.append({"role": "user", "content": _content(message.content)})
        elif isinstance(message, SystemPromptMessage):
            converted.append({"role": "system", "content": _content(message.content)})
        else:
            # Developer messages: most gateway backends only know "system".
            converted.append({"role": "system", "content": _content(message.content)})
    return converted


def token_counts(usage: Mapping[str, Any]) -> TokenCounts:
    """The counts of a `usage` object: cached prompt tokens as OpenAI and DashScope write them
    (prompt_tokens_details.cached_tokens), else as DeepSeek's own API does (prompt_cache_hit_tokens)."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")
    if not isinstance(cached, int) or isinstance(cached, bool) or cached < 0:
        cached = None
    return TokenCounts(usage.get("prompt_tokens"), usage.get("completion_tokens"), cached)


def wire_params(params: Mapping[str, Any], tools: Sequence[PromptMessageTool], stream: bool) -> dict[str, Any]:
    """The OpenAI parameters of a request: `stream` with stream_options asking for the usage, the tools."""
    wire = dict(params)
    if stream:
        wire["stream"] = True
        wire["stream_options"] = {"include_usage": True}
    if tools:
        wire["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]
    return wire


class OpenAIChat(ChatDialect):
    """The chat wire format; the completion dialect (openai/completion.py) overrides the three `_` hooks."""

    name = "openai"
    modes = frozenset({"chat"})

    def request_body(
        self,
        *,
        provider: str,
        model: str,
        messages: Sequence[PromptMessage],
        params: Mapping[str, Any],
        tools: Sequence[PromptMessageTool],
        stream: bool,
    ) -> dict[str, Any]:
        return self._body(provider, model, messages, wire_params(params, tools, stream))

    def parse_answer(self, response: httpx.Response) -> ChatAnswer:
        path = route_path(response)
        data = json_answer(response)
        if not isinstance(data.get("choices"), list) or not data["choices"]:
            raise stream_error(path, f"the answer has no choices (its fields: {field_names(data)})")
        with unusable_answer(path):
            turn = self._answer_turn(data)
        return ChatAnswer(
            turn=turn,
            model=data.get("model"),
            usage=token_counts(data.get("usage") or {}),
            system_fingerprint=data.get("system_fingerprint"),
        )

    def parse_chunk(self, data: dict[str, Any]) -> ChatChunk:
        usage = data.get("usage")  # only on the event that carries it
        return ChatChunk(
            turn=self._chunk_turn(data), model=data.get("model"), usage=token_counts(usage) if usage else None
        )

    def _body(
        self, provider: str, model: str, messages: Sequence[PromptMessage], params: dict[str, Any]
    ) -> dict[str, Any]:
        return chat_request_body(provider=provider, model=model, messages=openai_messages(messages), params=params)

    def _answer_turn(self, data: dict[str, Any]) -> ChatTurn:
        return parse_chat_answer(data=data)

    def _chunk_turn(self, data: dict[str, Any]) -> ChatTurn | None:
        return parse_chat_chunk(data=data)


DIALECT = OpenAIChat()
