"""Translates a Dify LLM call into the request body of the model's route, through the route's dialect.

What is decided here, from the catalog, before the dialect writes the wire format:
- message parts the model does not declare (images, video, audio, documents) are refused, naming
  the catalog field, before any request is sent;
- thinking shown to the user earlier (a leading `<think>` … `</think>` in an assistant message) is
  not part of the conversation the model continues, so it is not sent back;
- tools only for models with function calling; `response_format` json_schema from the json_schema
  parameter;
- non-standard fields (enable_thinking, top_k, enable_search, ...) only when the catalog declares
  them for the model, at the body path parameters.yaml gives, parsed where it says so
  (search_options is a JSON object), and those that only make sense with tools (tool_choice,
  parallel_tool_calls) only with tools: a gateway in front of a strict backend must never see a
  field the model did not ask for.
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
    VideoPromptMessageContent,
)

from adapters.catalog.loader import Catalog, CatalogModel
from adapters.dialects.kinds import ChatDialect
from adapters.dialects.openai.chat import openai_messages
from adapters.dialects.registry import dialect
from adapters.models.base import bad_request

_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
# Dify parameter → OpenAI field handled by LiteLLM's parameter mapping.
_STANDARD = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed")
# Message part → the model_info flag that lets a model receive it, and the part's name in errors.
_MEDIA = (
    (ImagePromptMessageContent, "supports_vision", "images"),
    (VideoPromptMessageContent, "supports_video_input", "video"),
    (AudioPromptMessageContent, "supports_audio_input", "audio"),
    (DocumentPromptMessageContent, "supports_pdf_input", "documents"),
)


def _check_part(model: CatalogModel, part: Any) -> None:
    if part.type == PromptMessageContentType.TEXT:
        return
    for kind, flag, what in _MEDIA:
        if isinstance(part, kind):
            if not getattr(model.info, flag):
                raise bad_request(model, f"this model does not accept {what} (model_info.{flag} is false).")
            return
    raise bad_request(model, f"unsupported message part {type(part).__name__}.")


def conversation(model: CatalogModel, messages: Sequence[PromptMessage]) -> list[PromptMessage]:
    """The messages as the model gets them: parts it cannot take refused, earlier shown thinking removed."""
    kept: list[PromptMessage] = []
    for message in messages:
        if isinstance(message.content, list):
            for part in message.content:
                _check_part(model, part)
        elif isinstance(message, AssistantPromptMessage) and isinstance(message.content, str):
            message = message.model_copy(update={"content": _THINK_BLOCK.sub("", message.content)})
        kept.append(message)
    return kept


def to_openai_messages(model: CatalogModel, messages: Sequence[PromptMessage]) -> list[dict[str, Any]]:
    """The conversation in OpenAI's chat form, as LiteLLM's token counter reads it."""
    return openai_messages(conversation(model, messages))


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
    if tools and not model.info.supports_function_calling:
        raise bad_request(model, "tools were given but the model does not support function calling.")
    params: dict[str, Any] = {k: parameters[k] for k in _STANDARD if parameters.get(k) is not None}
    if stop:
        params["stop"] = list(stop)
    if response_format := _response_format(model, parameters):
        params["response_format"] = response_format
    body = dialect(ChatDialect, model.route.dialect).request_body(
        provider=model.route.litellm,
        model=model.gateway_model,
        messages=conversation(model, messages),
        params=params,
        tools=tools or (),
        stream=stream,
    )
    for name in model.info.extra_params:
        value, spec = parameters.get(name), catalog.parameters[name]
        if value is None or (spec.only_with_tools and not tools):
            continue
        _set_path(body, spec.send_as, _json_object(model, name, value) if spec.parse == "json_object" else value)
    return body


def _json_object(model: CatalogModel, name: str, value: Any) -> dict[str, Any]:
    """A parameter typed in as a JSON object (search_options), as that object."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise bad_request(model, f"parameter {name} is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(parsed, dict):
        raise bad_request(model, f'parameter {name} must be a JSON object, e.g. {{"forced_search": true}}.')
    return parsed
