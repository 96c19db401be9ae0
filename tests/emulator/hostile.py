"""Hostile answers: more than a client can pass on in one piece, or faster than it can read.

Selected with fault segments (faults.py):
- `big-N`: the answer's text is at least N bytes of UTF-8 (BIG_UNIT repeated): a chat's content (a
  blocking answer's message, or ONE event of a stream), or, when the request offers tools, the
  `query` argument of each tool call (`calls-K`: K calls, default 1; one event per call in a
  stream); a transcript. `big_text(N)` is the text, so tests can compare.
- `flood-S`: a chat stream that writes content events as fast as the client reads them for S
  seconds, then a finish, usage and [DONE] like any stream. Every event carries FLOOD_WORD.
- `dims-N` (embeddings.py): vectors of N dimensions whatever the request asked for.

The answers are in the minimal OpenAI shape: what is hostile is their size and pace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .context import Context
from .responses import JSON, SSE, dumps
from .wire import Response

__all__ = ["BIG_UNIT", "FLOOD_WORD", "big_text", "chat"]

# Plain ASCII, quotes, a backslash, CJK and a control character: every way JSON text grows.
BIG_UNIT = 'big "answer" \\ 大字 \x01 '
FLOOD_WORD = "tok "
_FLOOD_EVENTS_PER_WRITE = 64  # so the emulator is not the slow side of the flood
_DONE = b"data: [DONE]\n\n"


def big_text(size: int) -> str:
    unit_bytes = len(BIG_UNIT.encode())
    return BIG_UNIT * -(-size // unit_bytes)


def _tool_calls(body: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    first = body["tools"][0]
    name = str(first.get("function", {}).get("name") if isinstance(first, Mapping) else first)
    arguments = json.dumps({"query": big_text(ctx.faults.big or 0)}, ensure_ascii=False)
    return [
        {
            "index": i,
            "id": f"call_{ctx.next_seq()}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for i in range(ctx.faults.calls)
    ]


def chat(ctx: Context, body: Mapping[str, Any]) -> Response | None:
    """The hostile answer to a chat request, or None when no hostile fault is set."""
    faults = ctx.faults
    if faults.big is None and faults.flood is None:
        return None
    chat_id, model = f"chatcmpl-{ctx.next_seq()}", body["model"]
    calls = _tool_calls(body, ctx) if body.get("tools") and faults.big is not None else []
    content = None if calls else (big_text(faults.big) if faults.big is not None else "")
    finish = "tool_calls" if calls else "stop"
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    envelope = {"id": chat_id, "object": "chat.completion.chunk", "created": ctx.created, "model": model}

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return b"data: " + dumps({**envelope, "choices": [choice]}).encode() + b"\n\n"

    if body.get("stream") is not True:
        message = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
        answer = {**envelope, "object": "chat.completion", "choices": [{"index": 0, "message": message,
                  "finish_reason": finish}], "usage": usage}  # fmt: skip
        return Response(200, [("Content-Type", JSON)], dumps(answer).encode())

    def events() -> Iterator[bytes]:
        yield event({"role": "assistant", "content": ""})
        if faults.flood is not None:
            burst = event({"content": FLOOD_WORD}) * _FLOOD_EVENTS_PER_WRITE
            until = time.monotonic() + faults.flood
            while time.monotonic() < until:
                yield burst
        if content:
            yield event({"content": content})
        for call in calls:
            yield event({"tool_calls": [call]})
        yield event({}, finish)
        yield b"data: " + dumps({**envelope, "choices": [], "usage": usage}).encode() + b"\n\n"
        yield _DONE

    return Response(200, [("Content-Type", SSE), ("Cache-Control", "no-cache")], events())
