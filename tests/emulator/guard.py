"""Responses of Higress ai-security-guard when content moderation blocks a chat.

Byte-for-byte the plugin's format strings (config/config.go): the non-stream body has a
space after `"id":`; stream events have NO space after `data:`; the final `data: [DONE]`
has no blank line after it, so strict SSE parsers never dispatch it. A block during the
response keeps what was already sent and injects these events with a new id.

The content is the current deny body (`deny_body`), or with the `guard-deny-text` fault segment
the plain deny text Higress wrote before #3642 (DefaultDenyMessage).
"""

from __future__ import annotations

import json

__all__ = ["DENY_CONTENT_TYPE_STREAM", "DENY_MESSAGE", "deny_body", "deny_json", "deny_stream"]

DENY_MESSAGE = "很抱歉，我无法回答您的问题"
DENY_CONTENT_TYPE_STREAM = "text/event-stream;charset=UTF-8"

_RESPONSE_FORMAT = (
    '{"id": "%s","object":"chat.completion","model":"from-security-guard","choices":[{"index":0,'
    '"message":{"role":"assistant","content":"%s"},"logprobs":null,"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}'
)
_STREAM_CHUNK = (
    'data:{"id":"%s","object":"chat.completion.chunk","model":"from-security-guard","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"%s"},"logprobs":null,"finish_reason":null}]}'
)
_STREAM_END = (
    'data:{"id":"%s","object":"chat.completion.chunk","model":"from-security-guard","choices":[{"index":0,'
    '"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}'
)
_STREAM_FORMAT = _STREAM_CHUNK + "\n\n" + _STREAM_END + "\n\n" + "data: [DONE]"


def deny_body(request_id: str) -> str:
    """The deny body Higress writes since #3642 (DenyResponseBody, compact Go json.Marshal): risk
    type and level with capitalised keys, the moderation request id, and no deny text."""
    body = {
        "blockedDetails": [{"Suggestion": "block", "Type": "contentModeration", "Level": "high"}],
        "requestId": request_id,
        "guardCode": 200,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _marshal_str(text: str) -> str:
    # wrapper.MarshalStr: the JSON string escape without the surrounding quotes.
    return json.dumps(text, ensure_ascii=False)[1:-1]


def deny_json(chat_id: str, content: str) -> bytes:
    return (_RESPONSE_FORMAT % (chat_id, _marshal_str(content))).encode("utf-8")


def deny_stream(chat_id: str, content: str) -> bytes:
    return (_STREAM_FORMAT % (chat_id, _marshal_str(content), chat_id)).encode("utf-8")
