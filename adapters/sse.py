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

from adapters.errors import stream_error


def iter_events(response: httpx.Response, route_path: str) -> Iterator[dict[str, Any]]:
    """Each JSON `data:` payload of an SSE response, until `[DONE]`."""
    event = ""
    for line in response.iter_lines():
        if not line:
            event = ""
            continue
        if line.startswith("data:"):
            payload = line[6:] if line.startswith("data: ") else line[5:]
            if payload == "[DONE]":
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
