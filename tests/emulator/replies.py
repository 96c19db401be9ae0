"""A planned chat reply on the wire: as DashScope's compatible mode writes it, or the minimal shape.

The default follows answers recorded from DashScope (../shared/real_traces: ds-qwen3max-*.sse,
ds-qwenplus-*.json, ds-qwen3max-toolcall-json.json), field order included:
- every stream chunk is {"choices", "object", "usage": null, "created", "system_fingerprint": null,
  "model", "id"}, and every choice carries "logprobs": null;
- the first chunk only opens the answer: role "assistant" with empty content (content null and
  empty reasoning_content for a thinking reply), or, for a tool call, the call's first fragment;
- thinking replies send content null beside each reasoning_content, then reasoning_content null
  beside each content;
- tool-call fragments after the first repeat id "" and type "function"; an empty fragment whose
  choice has neither finish_reason nor logprobs comes before the finish chunk;
- the usage chunk has "choices": [] and prompt_tokens_details.cached_tokens (and
  completion_tokens_details.reasoning_tokens for a thinking reply).

Cached prompt tokens (`CachedPrompt`, from the `cached-N` and `deepseek-cached-N` fault segments)
appear as DashScope and OpenAI write them (prompt_tokens_details.cached_tokens, also in the minimal
shape), or as DeepSeek's own API writes them (prompt_cache_hit_tokens and prompt_cache_miss_tokens).

The minimal shape (fault segment `minimal-shapes`) is the emulator's first OpenAI-style rendering:
no null fields, the role on the first content delta, tool-call fragments without id or type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .responses import dumps, sse_data
from .words import count_words, split_keep_spaces

__all__ = ["CachedPrompt", "Reply", "dashscope_events", "dashscope_json", "minimal_events", "minimal_json"]

_ARG_FRAGMENT = 5  # characters of tool arguments per streamed delta
_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Reply:
    content: str | None
    reasoning: str | None
    tool_name: str | None
    tool_args: str | None
    # The message's annotations (a transcript's audio_info, as Qwen-ASR writes it), JSON answers only.
    annotations: tuple[dict[str, Any], ...] = ()

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_name else "stop"

    def completion_tokens(self) -> int:
        return sum(count_words(part or "") for part in (self.content, self.reasoning, self.tool_args))


@dataclass(frozen=True, slots=True)
class CachedPrompt:
    """How many prompt tokens the usage reports as served from a context cache, and in which fields."""

    openai: int | None = None  # prompt_tokens_details.cached_tokens
    deepseek: int | None = None  # prompt_cache_hit_tokens / prompt_cache_miss_tokens


_NO_CACHE = CachedPrompt()


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat answer to render: what every shape (DashScope's, the minimal one; JSON or events) needs."""

    chat_id: str
    created: int
    model: str
    reply: Reply
    prompt: int  # prompt tokens, as the emulator counts them
    seq: Callable[[], int]  # the emulator-wide counter, for tool-call ids
    cache: CachedPrompt = _NO_CACHE
    include_usage: bool = False


def _usage(prompt: int, reply: Reply, *, cached_tokens: bool, cache: CachedPrompt) -> dict[str, Any]:
    completion = reply.completion_tokens()
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reply.reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": count_words(reply.reasoning)}
    if cache.deepseek is not None:
        hit = min(cache.deepseek, prompt)
        usage["prompt_cache_hit_tokens"], usage["prompt_cache_miss_tokens"] = hit, prompt - hit
    if cache.openai is not None or (cached_tokens and cache.deepseek is None):
        usage["prompt_tokens_details"] = {"cached_tokens": min(cache.openai or 0, prompt)}
    return usage


def _fragments(args: str) -> list[str]:
    return [args[i : i + _ARG_FRAGMENT] for i in range(0, len(args), _ARG_FRAGMENT)]


# ---------------------------------------------------------------------------------------------
# DashScope compatible mode (the default)


def dashscope_json(turn: Turn) -> dict[str, Any]:
    reply = turn.reply
    if reply.tool_name:
        call = {
            "function": {"arguments": reply.tool_args, "name": reply.tool_name},
            "id": f"call_{turn.seq()}",
            "index": 0,
            "type": "function",
        }
        message: dict[str, Any] = {"content": reply.content or "", "role": "assistant", "tool_calls": [call]}
    elif reply.reasoning is not None:
        message = {"content": reply.content, "reasoning_content": reply.reasoning, "role": "assistant"}
    else:
        message = {"role": "assistant", "content": reply.content}
    if reply.annotations:
        message["annotations"] = list(reply.annotations)
    return {
        "choices": [{"message": message, "finish_reason": reply.finish_reason, "index": 0, "logprobs": None}],
        "object": "chat.completion",
        "usage": _usage(turn.prompt, reply, cached_tokens=True, cache=turn.cache),
        "created": turn.created,
        "system_fingerprint": None,
        "model": turn.model,
        "id": turn.chat_id,
    }


def dashscope_events(turn: Turn) -> list[bytes]:
    reply = turn.reply

    def event(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        envelope = {
            "choices": choices,
            "object": "chat.completion.chunk",
            "usage": usage,
            "created": turn.created,
            "system_fingerprint": None,
            "model": turn.model,
            "id": turn.chat_id,
        }
        return sse_data(envelope)

    def delta(body: dict[str, Any]) -> bytes:
        return event([{"delta": body, "finish_reason": None, "index": 0, "logprobs": None}])

    thinking = reply.reasoning is not None
    events = []
    if thinking:
        opening = {"content": None, "role": "assistant", "reasoning_content": ""}
    elif reply.content or not reply.tool_name:
        opening = {"content": "", "role": "assistant"}
    else:
        opening = None  # the tool call's first fragment opens the answer
    if opening is not None:
        events.append(event([{"delta": opening, "index": 0, "logprobs": None, "finish_reason": None}]))
    events += [delta({"content": None, "reasoning_content": p}) for p in split_keep_spaces(reply.reasoning or "")]
    for piece in split_keep_spaces(reply.content or ""):
        events.append(delta({"content": piece, "reasoning_content": None} if thinking else {"content": piece}))
    if reply.tool_name and reply.tool_args is not None:
        call = {"index": 0, "id": f"call_{turn.seq()}", "type": "function"}
        head = {"content": None, "tool_calls": [{**call, "function": {"name": reply.tool_name, "arguments": ""}}]}
        events.append(delta(head if opening is not None else {**head, "role": "assistant"}))
        for piece in _fragments(reply.tool_args):
            fragment = {"index": 0, "id": "", "type": "function", "function": {"arguments": piece}}
            events.append(delta({"content": None, "tool_calls": [fragment]}))
        trailing = {"function": {"arguments": ""}, "index": 0, "id": "", "type": "function"}
        events.append(event([{"delta": {"tool_calls": [trailing]}, "index": 0}]))
        closing: dict[str, Any] = {}
    else:
        closing = {"content": "", "reasoning_content": None} if thinking else {"content": ""}
    events.append(event([{"finish_reason": reply.finish_reason, "delta": closing, "index": 0, "logprobs": None}]))
    if turn.include_usage:
        events.append(event([], _usage(turn.prompt, reply, cached_tokens=True, cache=turn.cache)))
    events.append(_DONE)
    return events


# ---------------------------------------------------------------------------------------------
# The minimal OpenAI-style shape (fault segment `minimal-shapes`)


def minimal_json(turn: Turn) -> dict[str, Any]:
    reply = turn.reply
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_name:
        message["tool_calls"] = [
            {
                "id": f"call_{turn.seq()}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.tool_args},
            }
        ]
    return {
        "id": turn.chat_id,
        "object": "chat.completion",
        "created": turn.created,
        "model": turn.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": _usage(turn.prompt, reply, cached_tokens=False, cache=turn.cache),
    }


def minimal_events(turn: Turn) -> list[bytes]:
    reply = turn.reply
    # Precomputed envelope halves: a 500-chunk stream costs one small dumps() per chunk.
    head = f'data: {{"id":"{turn.chat_id}","object":"chat.completion.chunk","created":{turn.created},'
    head += f'"model":{dumps(turn.model)},'
    open_choice = (head + '"choices":[{"index":0,"delta":').encode("utf-8")
    close_choice = b',"logprobs":null,"finish_reason":null}]}\n\n'

    deltas: list[dict[str, Any]] = []
    deltas += [{"reasoning_content": piece} for piece in split_keep_spaces(reply.reasoning or "")]
    deltas += [{"content": piece} for piece in split_keep_spaces(reply.content or "")]
    if reply.tool_name and reply.tool_args is not None:
        call = {
            "index": 0,
            "id": f"call_{turn.seq()}",
            "type": "function",
            "function": {"name": reply.tool_name, "arguments": ""},
        }
        deltas.append({"content": None, "tool_calls": [call]})
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in _fragments(reply.tool_args)]
    if not deltas:
        deltas.append({"content": ""})
    deltas[0] = {"role": "assistant", **deltas[0]}

    events = [open_choice + dumps(delta).encode("utf-8") + close_choice for delta in deltas]
    finish = f'{{}},"logprobs":null,"finish_reason":"{reply.finish_reason}"}}]}}\n\n'
    events.append(open_choice + finish.encode("utf-8"))
    if turn.include_usage:
        usage = dumps(_usage(turn.prompt, reply, cached_tokens=False, cache=turn.cache))
        events.append((head + f'"choices":[],"usage":{usage}}}\n\n').encode("utf-8"))
    events.append(_DONE)
    return events
