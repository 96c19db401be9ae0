"""OpenAI chat completions and legacy completions, JSON and SSE, with deterministic content.

Reply rules (tests compute expectations from the request alone):
- text reply: "echo: " + text of the last user message (+ " [images: N]" when it has images),
  cut at the first `stop` string;
- last message is a tool result: "echo: tool result: " + its content;
- `tools` and a final user message: a call of the first tool (or the one `tool_choice`
  names) with arguments json.dumps({"query": <user text>});
- `response_format` json_object/json_schema: json.dumps({"echo": <user text>});
- reasoning (enable_thinking true, or a qwq / deepseek-r1 / thinking model): first
  reasoning_content "thinking about: " + user text;
- usage: prompt = words in all message texts; completion = words in content + reasoning +
  tool arguments.
Streams carry one word per chunk (spaces kept), the first with role "assistant", then a
finish chunk, then (unless stream_options.include_usage is false, since ai-proxy turns it on)
a usage chunk with "choices":[], then `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import guard
from .context import Context
from .responses import JSON, SSE, dumps, json_response, openai_error
from .wire import Response
from .words import count_words, split_keep_spaces

__all__ = ["DEFAULT_EXTRA_FIELDS", "OPENAI_CHAT_FIELDS", "chat_completions", "completions"]

# Top-level request fields of OpenAI's chat completion schema.
OPENAI_CHAT_FIELDS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "reasoning_effort",
        "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
# DashScope/vLLM extras a Qwen backend accepts in compatible mode.
DEFAULT_EXTRA_FIELDS = frozenset(
    {
        "enable_thinking", "thinking_budget", "top_k", "chat_template_kwargs", "repetition_penalty",
        "enable_search", "search_options", "incremental_output", "vl_high_resolution_images", "min_p",
        "translation_options", "enable_code_interpreter",
    }
)  # fmt: skip
_REASONING_MARKERS = ("qwq", "deepseek-r1", "thinking")
_ARG_FRAGMENT = 5  # characters of tool arguments per streamed delta
_DONE = b"data: [DONE]\n\n"


def text_of(content: Any) -> tuple[str, int]:
    """(concatenated text, number of image parts) of a message content."""
    if isinstance(content, str):
        return content, 0
    text, images = "", 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            text += str(part.get("text", ""))
        elif kind in ("image_url", "image", "input_image") or "image" in part:
            images += 1
    return text, images


@dataclass(frozen=True, slots=True)
class Reply:
    content: str | None
    reasoning: str | None
    tool_name: str | None
    tool_args: str | None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_name else "stop"

    def completion_tokens(self) -> int:
        return sum(count_words(part or "") for part in (self.content, self.reasoning, self.tool_args))


def _bad_request(message: str) -> Response:
    return openai_error(400, message, "invalid_request_error")


def _unknown_fields(body: Mapping[str, Any], ctx: Context) -> Response | None:
    if not ctx.settings.strict_fields:
        return None
    allowed = OPENAI_CHAT_FIELDS | ctx.settings.allowed_extra_fields
    unknown = [name for name in body if name not in allowed]
    if not unknown:
        return None
    if len(unknown) == 1:
        return openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}", "invalid_request_error")
    return openai_error(400, f"Unrecognized request arguments supplied: {', '.join(unknown)}", "invalid_request_error")


def _tool_name(body: Mapping[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return str(choice["function"].get("name"))
    first = body["tools"][0]
    return str(first.get("function", {}).get("name") if isinstance(first, Mapping) else first)


def _cut_at_stop(text: str, stop: Any) -> str:
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    hits = [text.find(s) for s in stops if s and s in text]
    return text[: min(hits)] if hits else text


def _wants_reasoning(body: Mapping[str, Any], model: str) -> bool:
    lowered = model.lower()
    return body.get("enable_thinking") is True or any(marker in lowered for marker in _REASONING_MARKERS)


def plan_reply(body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], chunks: int | None) -> Reply:
    last = messages[-1]
    user_text, images = next(
        (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ("", 0)
    )
    model = str(body.get("model", ""))
    reasoning = f"thinking about: {user_text}" if _wants_reasoning(body, model) else None
    if chunks is not None:  # benchmark fault: exactly N words
        return Reply(" ".join(f"tok{i}" for i in range(1, chunks + 1)), reasoning, None, None)
    if last.get("role") == "tool":
        return Reply(f"echo: tool result: {text_of(last.get('content'))[0]}", reasoning, None, None)
    if body.get("tools") and last.get("role") == "user" and (name := _tool_name(body)):
        return Reply(None, reasoning, name, json.dumps({"query": user_text}, ensure_ascii=False))
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        content = json.dumps({"echo": user_text}, ensure_ascii=False)
    else:
        content = f"echo: {user_text}" + (f" [images: {images}]" if images else "")
    return Reply(_cut_at_stop(content, body.get("stop")), reasoning, None, None)


def _usage(prompt: int, reply: Reply) -> dict[str, Any]:
    completion = reply.completion_tokens()
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reply.reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": count_words(reply.reasoning)}
    return usage


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if isinstance(options, Mapping) and "include_usage" in options:
        return bool(options["include_usage"])
    return True  # ai-proxy sets include_usage=true when the client did not say


def _parse(ctx: Context) -> Mapping[str, Any] | Response:
    try:
        body = json.loads(ctx.request.body)
    except (ValueError, UnicodeDecodeError):
        return _bad_request("We could not parse the JSON body of your request.")
    if not isinstance(body, Mapping):
        return _bad_request("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _bad_request("you must provide a model parameter")
    return body


def chat_completions(ctx: Context) -> Response:
    body = _parse(ctx)
    if isinstance(body, Response):
        return body
    if (rejection := _unknown_fields(body, ctx)) is not None:
        return rejection
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, Mapping) for m in messages):
        return _bad_request("'messages' must be a non-empty array of message objects")
    stream = body.get("stream") is True
    user_text = next((text_of(m.get("content"))[0] for m in reversed(messages) if m.get("role") == "user"), "")
    if "BLOCK_ME" in user_text:
        return _guard_response(ctx, stream)
    if "BLOCK_MIDSTREAM" in user_text and not stream:
        return _guard_response(ctx, stream=False)  # a response-phase block of a buffered answer

    reply = plan_reply(body, messages, ctx.faults.chunks)
    prompt = sum(count_words(text_of(m.get("content"))[0]) for m in messages)
    chat_id = f"chatcmpl-{ctx.next_seq()}"
    if not stream:
        return json_response(_chat_json(chat_id, ctx.created, body["model"], reply, prompt, ctx.next_seq))
    events = _chat_events(chat_id, ctx.created, body["model"], reply, prompt, _include_usage(body), ctx.next_seq)
    if "BLOCK_MIDSTREAM" in user_text:
        events = [*events[:2], guard.deny_stream(f"chatcmpl-{ctx.next_seq()}")]
    return Response(200, [("Content-Type", SSE), ("Cache-Control", "no-cache")], ctx.faults.shape_stream(events))


def _guard_response(ctx: Context, stream: bool) -> Response:
    chat_id = f"chatcmpl-{ctx.next_seq()}"
    if stream:
        events = [guard.deny_stream(chat_id)]
        return Response(200, [("Content-Type", guard.DENY_CONTENT_TYPE_STREAM)], ctx.faults.shape_stream(events))
    return Response(200, [("Content-Type", JSON)], guard.deny_json(chat_id))


def _chat_json(
    chat_id: str, created: int, model: str, reply: Reply, prompt: int, seq: Callable[[], int]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_name:
        message["tool_calls"] = [
            {
                "id": f"call_{seq()}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.tool_args},
            }
        ]
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": _usage(prompt, reply),
    }


def _chat_events(
    chat_id: str, created: int, model: str, reply: Reply, prompt: int, include_usage: bool, seq: Callable[[], int]
) -> list[bytes]:
    # Precomputed envelope halves: a 500-chunk stream costs one small dumps() per chunk.
    head = f'data: {{"id":"{chat_id}","object":"chat.completion.chunk","created":{created},"model":{dumps(model)},'
    open_choice = (head + '"choices":[{"index":0,"delta":').encode("utf-8")
    close_choice = b',"logprobs":null,"finish_reason":null}]}\n\n'

    deltas: list[dict[str, Any]] = []
    deltas += [{"reasoning_content": piece} for piece in split_keep_spaces(reply.reasoning or "")]
    deltas += [{"content": piece} for piece in split_keep_spaces(reply.content or "")]
    if reply.tool_name and reply.tool_args is not None:
        call = {
            "index": 0,
            "id": f"call_{seq()}",
            "type": "function",
            "function": {"name": reply.tool_name, "arguments": ""},
        }
        deltas.append({"content": None, "tool_calls": [call]})
        args = reply.tool_args
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + _ARG_FRAGMENT]}}]}
            for i in range(0, len(args), _ARG_FRAGMENT)
        ]
    if not deltas:
        deltas.append({"content": ""})
    deltas[0] = {"role": "assistant", **deltas[0]}

    events = [open_choice + dumps(delta).encode("utf-8") + close_choice for delta in deltas]
    finish = f'{{}},"logprobs":null,"finish_reason":"{reply.finish_reason}"}}]}}\n\n'
    events.append(open_choice + finish.encode("utf-8"))
    if include_usage:
        events.append((head + f'"choices":[],"usage":{dumps(_usage(prompt, reply))}}}\n\n').encode("utf-8"))
    events.append(_DONE)
    return events


def completions(ctx: Context) -> Response:
    """Legacy /v1/completions: text = "echo: " + prompt (one choice per prompt in a list)."""
    body = _parse(ctx)
    if isinstance(body, Response):
        return body
    raw_prompt = body.get("prompt", "")
    prompts = [str(p) for p in raw_prompt] if isinstance(raw_prompt, list) else [str(raw_prompt)]
    chunks = ctx.faults.chunks
    texts = [
        " ".join(f"tok{i}" for i in range(1, chunks + 1))
        if chunks is not None
        else _cut_at_stop(f"echo: {p}", body.get("stop"))
        for p in prompts
    ]
    prompt_tokens = sum(count_words(p) for p in prompts)
    completion_tokens = sum(count_words(t) for t in texts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    cmpl_id = f"cmpl-{ctx.next_seq()}"
    envelope = {"id": cmpl_id, "object": "text_completion", "created": ctx.created, "model": body["model"]}
    if body.get("stream") is not True:
        choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": "stop"} for i, t in enumerate(texts)]
        return json_response({**envelope, "choices": choices, "usage": usage})

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + dumps({**envelope, "choices": choices, **extra}).encode("utf-8") + b"\n\n"

    events = [
        event([{"index": i, "text": piece, "logprobs": None, "finish_reason": None}])
        for i, text in enumerate(texts)
        for piece in split_keep_spaces(text) or [""]
    ]
    events += [event([{"index": i, "text": "", "logprobs": None, "finish_reason": "stop"}]) for i in range(len(texts))]
    if _include_usage(body):
        events.append(event([], usage=usage))
    events.append(_DONE)
    return Response(200, [("Content-Type", SSE), ("Cache-Control", "no-cache")], ctx.faults.shape_stream(events))
