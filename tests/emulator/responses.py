"""Builders for the response bodies the gateway and its upstreams produce."""

from __future__ import annotations

import json
from typing import Any

from .wire import Response

__all__ = [
    "JSON",
    "SSE",
    "dashscope_error",
    "dumps",
    "json_response",
    "openai_error",
    "sse_data",
    "text_response",
]

JSON = "application/json"
SSE = "text/event-stream"


def dumps(obj: Any) -> str:
    # Compact and UTF-8 like DashScope; clients must not depend on whitespace.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", JSON), *(headers or [])], dumps(obj).encode("utf-8"))


def text_response(
    text: str, status: int, headers: list[tuple[str, str]] | None = None, ctype: str = "text/plain"
) -> Response:
    return Response(status, [("Content-Type", ctype), *(headers or [])], text.encode("utf-8"))


def sse_data(obj: Any) -> bytes:
    """One `data: <json>` event as ai-proxy writes it (with the space, blank line after)."""
    return b"data: " + dumps(obj).encode("utf-8") + b"\n\n"


def openai_error(
    status: int, message: str, err_type: str, code: str | None = None, param: str | None = None
) -> Response:
    """OpenAI-compatible error envelope (also what DashScope compatible-mode returns)."""
    return json_response({"error": {"message": message, "type": err_type, "param": param, "code": code}}, status)


def dashscope_error(status: int, code: str, message: str, request_id: str) -> Response:
    """DashScope native error envelope, passed through the gateway unchanged."""
    return json_response({"code": code, "message": message, "request_id": request_id}, status)
