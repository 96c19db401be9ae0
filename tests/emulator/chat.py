"""OpenAI chat completions and legacy completions, JSON and SSE, with deterministic content.

Reply rules (tests compute expectations from the request alone):
- text reply: "echo: " + text of the last user message (+ " [images: N]" when it has images),
  cut at the first `stop` string;
- last message is a tool result: "echo: tool result: " + its content;
- `tools` and a final user message: a call of the first tool (or the one `tool_choice`
  names) with arguments json.dumps({"query": <user text>});
- `response_format` json_object/json_schema: json.dumps({"echo": <user text>});
- an `input_audio` part in the last user message (Qwen3-ASR-Flash and Qwen-Omni on the chat
  route): "transcript of input_audio: N bytes, sha256 <12 hex>" of the decoded data URL, like the
  transcription route; an http(s) URL as the data gives "transcript of <URL>"; content security
  hears the decoded audio bytes as text (`heard`), so BLOCK_ME in a clip blocks it; a JSON
  answer carries Qwen-ASR's annotation [{"type": "audio_info", "language", "emotion"}];
- reasoning (enable_thinking true, or a qwq / deepseek-r1 / thinking model): first
  reasoning_content "thinking about: " + user text;
- usage: prompt = words in all message texts; completion = words in content + reasoning +
  tool arguments.
Streams carry one word per chunk (spaces kept) after a chunk that opens the answer with role
"assistant", then a finish chunk, then (unless stream_options.include_usage is false, since
ai-proxy turns it on) a usage chunk with "choices":[], then `data: [DONE]`. Chunks and JSON
answers have the shapes DashScope's compatible mode writes (replies.py), or the minimal ones with
the `minimal-shapes` fault segment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import guard, hostile, replies
from .context import Context
from .replies import CachedPrompt, Reply
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
        "translation_options", "enable_code_interpreter", "asr_options",
    }
)  # fmt: skip
_REASONING_MARKERS = ("qwq", "deepseek-r1", "thinking")
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


_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?;base64,(.*)", re.S)


def _input_audio(content: Any) -> str | None:
    """The data of the last `input_audio` part of `content`, or None when it has none.

    Raises ValueError naming what is wrong with a part that is not {"type": "input_audio",
    "input_audio": {"data": <data URL or http(s) URL>, "format"?: ...}}.
    """
    parts = (
        [p for p in content if isinstance(p, Mapping) and p.get("type") == "input_audio"]
        if isinstance(content, list)
        else []
    )
    if not parts:
        return None
    audio = parts[-1].get("input_audio")
    data = audio.get("data") if isinstance(audio, Mapping) else None
    if not isinstance(data, str) or not data:
        raise ValueError("input_audio.data is required: a data URL (data:<type>;base64,<audio>) or an audio URL")
    return data


def _decoded(data: str) -> bytes:
    match = _DATA_URL.fullmatch(data)
    if match is None:
        raise ValueError("input_audio.data must be a data URL (data:<type>;base64,<audio>) or an audio URL")
    try:
        return base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("input_audio.data is not valid base64") from None


def audio_transcript(content: Any) -> str | None:
    """The transcript the emulator gives an `input_audio` part of `content`, or None when it has none
    (ValueError for a part the upstream would refuse)."""
    data = _input_audio(content)
    if data is None:
        return None
    if data.startswith(("http://", "https://")):
        return f"transcript of {data}"
    raw = _decoded(data)
    return f"transcript of input_audio: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:12]}"


def heard(content: Any) -> str:
    """What content security hears in an inline `input_audio` part: its bytes read as Latin-1, so a
    clip carrying BLOCK_ME or BLOCK_MIDSTREAM is blocked like a text saying it ("" without one)."""
    try:
        data = _input_audio(content)
        return _decoded(data).decode("latin-1") if data and not data.startswith(("http://", "https://")) else ""
    except ValueError:
        return ""  # refused as a bad request when the reply is planned


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


def _audio_info(body: Mapping[str, Any]) -> dict[str, Any]:
    """The annotation Qwen-ASR puts beside a transcript: the language (asr_options.language when
    given, else the one it "detected") and the emotion it heard."""
    options = body.get("asr_options")
    language = options.get("language") if isinstance(options, Mapping) else None
    return {"type": "audio_info", "language": language or "en", "emotion": "neutral"}


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
    if last.get("role") == "user" and (transcript := audio_transcript(last.get("content"))) is not None:
        return Reply(transcript, reasoning, None, None, annotations=(_audio_info(body),))
    if body.get("tools") and last.get("role") == "user" and (name := _tool_name(body)):
        return Reply(None, reasoning, name, json.dumps({"query": user_text}, ensure_ascii=False))
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        content = json.dumps({"echo": user_text}, ensure_ascii=False)
    else:
        content = f"echo: {user_text}" + (f" [images: {images}]" if images else "")
    return Reply(_cut_at_stop(content, body.get("stop")), reasoning, None, None)


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
    if (answer := hostile.chat(ctx, body)) is not None:
        return answer
    stream = body.get("stream") is True
    user_text = next((text_of(m.get("content"))[0] for m in reversed(messages) if m.get("role") == "user"), "")
    user_text += heard(messages[-1].get("content"))
    if "BLOCK_ME" in user_text:
        return _guard_response(ctx, stream)
    if "BLOCK_MIDSTREAM" in user_text and not stream:
        return _guard_response(ctx, stream=False)  # a response-phase block of a buffered answer

    try:
        reply = plan_reply(body, messages, ctx.faults.chunks)
    except ValueError as exc:  # an input_audio part the upstream would refuse
        return _bad_request(str(exc))
    prompt = sum(count_words(text_of(m.get("content"))[0]) for m in messages)
    chat_id = f"chatcmpl-{ctx.next_seq()}"
    minimal = ctx.faults.minimal_shapes
    cache = CachedPrompt(ctx.faults.cached_tokens, ctx.faults.deepseek_cached_tokens)
    turn = replies.Turn(chat_id, ctx.created, body["model"], reply, prompt, ctx.next_seq, cache, _include_usage(body))
    if not stream:
        render = replies.minimal_json if minimal else replies.dashscope_json
        return json_response(render(turn))
    events = (replies.minimal_events if minimal else replies.dashscope_events)(turn)
    if "BLOCK_MIDSTREAM" in user_text:
        events = [*events[:2], guard.deny_stream(f"chatcmpl-{ctx.next_seq()}", _deny_content(ctx))]
    return Response(200, [("Content-Type", SSE), ("Cache-Control", "no-cache")], ctx.faults.shape_stream(events))


def _deny_content(ctx: Context) -> str:
    return guard.DENY_MESSAGE if ctx.faults.guard_deny_text else guard.deny_body(ctx.request_id())


def _guard_response(ctx: Context, stream: bool) -> Response:
    chat_id = f"chatcmpl-{ctx.next_seq()}"
    if stream:
        events = [guard.deny_stream(chat_id, _deny_content(ctx))]
        return Response(200, [("Content-Type", guard.DENY_CONTENT_TYPE_STREAM)], ctx.faults.shape_stream(events))
    return Response(200, [("Content-Type", JSON)], guard.deny_json(chat_id, _deny_content(ctx)))


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
