"""Server-sent events read as the event-stream format defines them (WHATWG HTML, "Server-sent events").

- Lines end at CRLF, LF or CR and nowhere else. U+2028, U+2029, U+0085 and the other characters
  `str.splitlines()` (and so httpx's `iter_lines`) also breaks at are content: JSON encoders that
  do not escape non-ASCII text write them raw inside strings.
- `data:` with or without the space after the colon (Higress' own plugins write none); the data
  lines of one event are joined with LF and the event ends at a blank line; comment lines, `id:`
  and `retry:` carry nothing the plugin needs.
- An `event: error` event is an error whatever its data looks like: wrapped as `{"error": ...}`
  when the data is a bare error object or plain text, so the caller sees every error one way.

The stream ends at `data: [DONE]` or when the body ends. Which of the two happened is recorded on the
EventStream (`done`): whether a body that ended without `[DONE]` is a complete answer is the
caller's decision, since only it knows whether a finish reason arrived.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from adapters.cooperative import give_way
from adapters.gateway.errors import stream_error

# After [DONE], how long one read may wait for the rest of the body, and how many lines are read.
_DRAIN_READ_TIMEOUT = 0.05
_DRAIN_LINES = 8
_BOM = "\ufeff"
_DONE = "[DONE]"


def iter_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of a text stream split at CRLF, LF or CR only, however the chunks cut them (a
    leading byte order mark dropped).

    Performance: a chunk is split with str.split, not scanned a character at a time; a chunk
    without CR (nearly every chunk of a real stream) costs one `in` test more than a plain split.
    """
    unfinished: list[str] = []  # the pieces of a line whose end has not arrived yet
    at_start, after_cr = True, False
    for chunk in chunks:
        if at_start and chunk:
            chunk, at_start = chunk.removeprefix(_BOM), False  # a byte order mark opens no line
        if after_cr and chunk[:1] == "\n":
            chunk = chunk[1:]  # the LF of a CRLF cut between two reads: that line already ended
        if not chunk:
            continue
        after_cr = chunk.endswith("\r")
        if "\r" in chunk:
            chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
        lines = chunk.split("\n")
        # The bound on one line's length belongs here (issue #12): `unfinished` is all that grows.
        unfinished.append(lines.pop())
        if lines:
            if len(unfinished) > 1:
                lines[0] = "".join(unfinished[:-1]) + lines[0]
            unfinished = unfinished[-1:] if unfinished[-1] else []
            yield from lines
    if unfinished:
        yield "".join(unfinished)


class EventStream:
    """The JSON events of one SSE response, in order; `done` tells whether `[DONE]` ended them."""

    def __init__(self, response: httpx.Response, route_path: str) -> None:
        self.response = response
        self.route_path = route_path
        self.done = False
        self.count = 0  # events yielded so far; errors name an event by its number from 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.response.encoding = "utf-8"  # an event stream is UTF-8 whatever its Content-Type says
        lines = iter_lines(self.response.iter_text())
        event_type, data = "", []
        for line in lines:
            give_way()  # a gateway that sends faster than the plugin relays must not hold the hub
            if line:
                # Performance: `data:` lines, nearly all of a stream, are sliced once and not split.
                if line.startswith("data:"):
                    data.append(line[6:] if line[5:6] == " " else line[5:])
                elif line[0] != ":":  # not a comment
                    name, _, value = line.partition(":")
                    value = value[1:] if value[:1] == " " else value
                    if name == "data":
                        data.append(value)  # a bare `data` line
                    elif name == "event":
                        event_type = value
                continue
            if data:
                if data[0] == _DONE and len(data) == 1:
                    self._finish(lines)
                    return
                if (event := self._event(event_type, data)) is not None:
                    self.count += 1
                    yield event
                event_type, data = "", []
            else:
                event_type = ""
        # The body ended. A last event without its blank line is still delivered: Higress'
        # security plugin ends its streams with `data: [DONE]` and no newline at all.
        if data == [_DONE]:
            self.done = True
        elif data and (event := self._event(event_type, data)) is not None:
            self.count += 1
            yield event

    def _event(self, event_type: str, data: list[str]) -> dict[str, Any] | None:
        """The event's JSON object; None for an event whose data is empty (a keep-alive)."""
        payload = data[0] if len(data) == 1 else "\n".join(data)
        if not payload or payload.isspace():
            return None
        try:
            parsed = json.loads(payload)
        except ValueError as exc:
            if event_type == "error":
                return {"error": {"message": payload}}
            raise stream_error(
                self.route_path, f"event {self.count + 1} ({len(payload)} characters) is not JSON"
            ) from exc
        if event_type == "error" and not (isinstance(parsed, dict) and "error" in parsed):
            return {"error": parsed}
        if not isinstance(parsed, dict):
            kind = type(parsed).__name__
            raise stream_error(self.route_path, f"event {self.count + 1} is a JSON {kind}, not an object")
        return parsed

    def _finish(self, lines: Iterator[str]) -> None:
        """Read what follows [DONE] (normally just the end of the chunked body).

        A fully read body returns the keep-alive connection to the pool instead of closing it, so
        the next streamed chat needs no new TCP and TLS handshake. A gateway that keeps the body
        open after [DONE] gets _DRAIN_READ_TIMEOUT (httpcore reads the request's timeout dict on
        every read), after which the connection is closed as it would have been anyway.
        """
        self.done = True
        timeouts = self.response.request.extensions.get("timeout")
        if isinstance(timeouts, dict):
            timeouts["read"] = _DRAIN_READ_TIMEOUT
        try:
            for count, _ in enumerate(lines):
                if count >= _DRAIN_LINES:
                    return
        except httpx.HTTPError:
            return
