"""Translates a Dify LLM call into the request body LiteLLM's provider translation builds for the route.

Standard OpenAI parameters go through LiteLLM's `map_openai_params`/`transform_request` for the
route's provider. Non-standard fields (enable_thinking, top_k, ...) are added only when the catalog
declares them for the model, at the body path parameters.yaml gives: a gateway in front of a strict
backend must never see a field the model did not ask for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

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

from adapters.catalog.loader import Catalog, CatalogModel
from adapters.dialects.answers import bad_request
from adapters.engine.litellm_facade import chat_request_body, text_completion_request_body

_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
# Dify parameter → OpenAI field handled by LiteLLM's parameter mapping.
_STANDARD = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed")


def _media_part(model: CatalogModel, part: Any) -> dict[str, Any]:
    info = model.info
    if isinstance(part, ImagePromptMessageContent):
        if not info.supports_vision:
            raise bad_request(model, "this model does not accept images (model_info.supports_vision is false).")
        return {"type": "image_url", "image_url": {"url": part.data, "detail": part.detail.value}}
    if isinstance(part, VideoPromptMessageContent):
        if not info.supports_video_input:
            raise bad_request(model, "this model does not accept video (model_info.supports_video_input is false).")
        return {"type": "video_url", "video_url": {"url": part.data}}
    if isinstance(part, AudioPromptMessageContent):
        if not info.supports_audio_input:
            raise bad_request(model, "this model does not accept audio (model_info.supports_audio_input is false).")
        if part.url:
            return {"type": "audio_url", "audio_url": {"url": part.url}}
        return {"type": "input_audio", "input_audio": {"data": part.base64_data, "format": part.format}}
    if isinstance(part, DocumentPromptMessageContent):
        if not info.supports_pdf_input:
            raise bad_request(model, "this model does not accept documents (model_info.supports_pdf_input is false).")
        file: dict[str, Any] = {"file_data": part.data}
        if part.filename:
            file["filename"] = part.filename
        return {"type": "file", "file": file}
    raise bad_request(model, f"unsupported message part {type(part).__name__}.")


def _content(model: CatalogModel, content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type == PromptMessageContentType.TEXT:
            parts.append({"type": "text", "text": part.data})
        else:
            parts.append(_media_part(model, part))
    return parts


def to_openai_messages(model: CatalogModel, messages: Sequence[PromptMessage]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AssistantPromptMessage):
            text = message.content if isinstance(message.content, str) else _content(model, message.content)
            if isinstance(text, str):
                # Earlier thinking shown to the user is not part of the conversation the model continues.
                text = _THINK_BLOCK.sub("", text)
            item: dict[str, Any] = {"role": "assistant", "content": text or None}
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
            converted.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": _content(model, message.content)}
            )
        elif isinstance(message, UserPromptMessage):
            converted.append({"role": "user", "content": _content(model, message.content)})
        elif isinstance(message, SystemPromptMessage):
            converted.append({"role": "system", "content": _content(model, message.content)})
        else:
            # Developer messages: most gateway backends only know "system".
            converted.append({"role": "system", "content": _content(model, message.content)})
    return converted


def _tools(tools: Sequence[PromptMessageTool]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def _response_format(model: CatalogModel, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = parameters.get("response_format")
    if not kind or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    raw = parameters.get("json_schema")
    if not raw:
        raise bad_request(model, "response_format json_schema needs the json_schema parameter.")
    try:
        schema = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise bad_request(model, f"parameter json_schema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise bad_request(model, "parameter json_schema must be a JSON object.")
    if "schema" not in schema:
        schema = {"name": "response", "schema": schema}
    return {"type": "json_schema", "json_schema": schema}


def _set_path(body: dict[str, Any], path: Sequence[str], value: Any) -> None:
    target = body
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _prompt_text(messages: Sequence[PromptMessage]) -> str:
    """Completion mode sends one prompt: the text of the messages, in order."""
    texts = []
    for message in messages:
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(p.data for p in content if p.type == PromptMessageContentType.TEXT)
    return "\n".join(texts)


def build_chat_request(
    model: CatalogModel,
    catalog: Catalog,
    messages: Sequence[PromptMessage],
    parameters: Mapping[str, Any],
    tools: Sequence[PromptMessageTool] | None,
    stop: Sequence[str] | None,
    stream: bool,
) -> dict[str, Any]:
    """The body for the model's route; `stream` asks the gateway to stream (see models/llm/streaming.py)."""
    openai_params: dict[str, Any] = {k: parameters[k] for k in _STANDARD if parameters.get(k) is not None}
    if stop:
        openai_params["stop"] = list(stop)
    if stream:
        openai_params["stream"] = True
        openai_params["stream_options"] = {"include_usage": True}
    if tools:
        if not model.info.supports_function_calling:
            raise bad_request(model, "tools were given but the model does not support function calling.")
        openai_params["tools"] = _tools(tools)
    if response_format := _response_format(model, parameters):
        openai_params["response_format"] = response_format

    if model.info.mode == "completion":
        body = text_completion_request_body(
            model=model.gateway_model, prompt=_prompt_text(messages), params=openai_params
        )
    else:
        body = chat_request_body(
            provider=model.route.litellm,
            model=model.gateway_model,
            messages=to_openai_messages(model, messages),
            params=openai_params,
        )
    for name in model.info.extra_params:
        if parameters.get(name) is not None:
            _set_path(body, catalog.parameters[name].send_as, parameters[name])
    return body
