"""Server-sent events as the gateway writes them.

Higress' content-security plugin writes `data:` with no space after the colon, so both forms are
accepted (gateway-protocol.md §4). A stream that closes before `data: [DONE]` is an error: the
caller must not present a cut-off answer as complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from adapters.gateway.errors import stream_error

# After [DONE], how long one read may wait for the rest of the body, and how many lines are read.
_DRAIN_READ_TIMEOUT = 0.05
_DRAIN_LINES = 8


def _drain(lines: Iterator[str], response: httpx.Response) -> None:
    """Read what follows [DONE] (normally just the end of the chunked body).

    A fully read body returns the keep-alive connection to the pool instead of closing it, so the
    next streamed chat needs no new TCP and TLS handshake. A gateway that keeps the body open after
    [DONE] gets _DRAIN_READ_TIMEOUT (httpcore reads the request's timeout dict on every read), after
    which the connection is closed as it would have been anyway.
    """
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        timeouts["read"] = _DRAIN_READ_TIMEOUT
    try:
        for count, _ in enumerate(lines):
            if count >= _DRAIN_LINES:
                return
    except httpx.HTTPError:
        return


def iter_events(response: httpx.Response, route_path: str) -> Iterator[dict[str, Any]]:
    """Each JSON `data:` payload of an SSE response, until `[DONE]`."""
    event = ""
    lines = response.iter_lines()
    for line in lines:
        if not line:
            event = ""
            continue
        if line.startswith("data:"):
            payload = line[6:] if line.startswith("data: ") else line[5:]
            if payload == "[DONE]":
                _drain(lines, response)
                return
            try:
                data = json.loads(payload)
            except ValueError as exc:
                raise stream_error(route_path, f"an event is not JSON: {payload[:200]!r}") from exc
            if event == "error" and isinstance(data, dict) and "error" not in data:
                data = {"error": data}
            yield data
        elif line.startswith("event:"):
            event = line[6:].strip()
        # `id:`, `retry:` and `:` comment lines carry nothing the plugin needs.
    raise stream_error(route_path, "the connection closed before [DONE]; the answer is incomplete")
