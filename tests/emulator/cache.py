"""Higress ai-cache: a chat answered once is answered again from the cache, with zero usage.

Selected per request by the `ai-cache` segment (`/_fault/ai-cache/v1/chat/completions`), as a
route with the plugin configured. Follows alibaba/higress `plugins/wasm-go/extensions/ai-cache`
(README and main.go) in its default configuration:
- the cache key is the content of the last message (`messages.@reverse.0.content`);
- a hit is answered before the request reaches a model, with the plugin's response templates:
  model and id `from-cache`, `object: chat.completion` even inside a stream, content and
  `finish_reason` in one event, `data:` without a space, zero usage;
- a miss is forwarded and its answer's text stored (answers with tool calls are not stored);
- `x-higress-skip-ai-cache: on` skips both: the request neither reads nor fills the cache.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from .responses import JSON, SSE
from .wire import Request, Response

__all__ = ["SKIP_HEADER", "AiCache"]

SKIP_HEADER = "x-higress-skip-ai-cache"
_ZERO_USAGE = '"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'
_JSON_TEMPLATE = (
    '{"id":"from-cache","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],'
    '"model":"from-cache","object":"chat.completion",' + _ZERO_USAGE + "}"
)
_STREAM_TEMPLATE = (
    'data:{"id":"from-cache","choices":[{"index":0,"delta":{"role":"assistant","content":%s},"finish_reason":"stop"}],'
    '"model":"from-cache","object":"chat.completion",' + _ZERO_USAGE + "}\n\ndata:[DONE]\n\n"
)


def _cache_key(body: Mapping[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], Mapping):
        return None
    content = messages[-1].get("content")
    if content is None:
        return None
    # gjson's String() of an array or object is its JSON text.
    key = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return key or None


def _answer_text(response: Response) -> str | None:
    """The text of a chat answer (choices.0.message.content, or a stream's content deltas); None
    when it carries tool calls or is not a readable answer."""
    raw = response.read()
    if not response.streamed:
        try:
            message = json.loads(raw)["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return None if message.get("tool_calls") else message.get("content")
    parts: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        data = line.removeprefix("data:").strip()
        if not line.startswith("data:") or data == "[DONE]":
            continue
        try:
            choices = json.loads(data).get("choices") or []
        except (ValueError, AttributeError):
            return None
        for choice in choices:
            delta = choice.get("delta") or {}
            if delta.get("tool_calls"):
                return None
            parts.append(delta.get("content") or "")
    return "".join(parts)


class AiCache:
    """The cache of one emulator; thread-safe, forgotten by `clear`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, str] = {}

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()

    def lookup(self, request: Request, body: Mapping[str, Any] | None) -> tuple[Response | None, str | None]:
        """(the cached answer, None) on a hit; (None, the key to store the answer under) on a miss;
        (None, None) when the request skips the cache or has no key."""
        if request.headers.get(SKIP_HEADER, "").strip().lower() == "on" or body is None:
            return None, None
        key = _cache_key(body)
        if key is None:
            return None, None
        with self._lock:
            text = self._answers.get(key)
        if text is None:
            return None, key
        content = json.dumps(text, ensure_ascii=False)
        if body.get("stream") is True:
            return Response(200, [("Content-Type", SSE)], [(_STREAM_TEMPLATE % content).encode("utf-8")]), None
        return Response(200, [("Content-Type", JSON)], (_JSON_TEMPLATE % content).encode("utf-8")), None

    def store(self, key: str, response: Response) -> Response:
        """Keep the text of a successful answer under `key`; returns the response, still sendable."""
        if response.status != 200:
            return response
        if response.streamed:
            response.body = list(response.body)  # read once here, sent as recorded
        text = _answer_text(response)
        if text is not None:
            with self._lock:
                self._answers[key] = text
        return response
