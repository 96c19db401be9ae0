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

Bounds (adapters/gateway/limits.py): the body is read through adapters/gateway/body.py (decoded
size, deadline, floor rate), and one event, a line of it too, holds at most EVENT_LIMIT characters:
a line that never ends would otherwise grow in memory until the process dies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import gevent
import httpx
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.cooperative import give_way
from adapters.gateway.body import decoded_text
from adapters.gateway.errors import stream_error
from adapters.gateway.limits import EVENT_LIMIT

# After [DONE], how long the rest of the body may take to arrive, and how many lines are read.
_DRAIN_SECONDS = 0.05
_DRAIN_LINES = 8
_BOM = "\ufeff"
_DONE = "[DONE]"


class LineTooLongError(ValueError):
    """A line grew past the limit before its end arrived."""


def iter_lines(chunks: Iterable[str], limit: int = EVENT_LIMIT) -> Iterator[str]:
    """The lines of a text stream split at CRLF, LF or CR only, however the chunks cut them (a
    leading byte order mark dropped); LineTooLongError once a line passes `limit` characters.

    Performance: a chunk is split with str.split, not scanned a character at a time; a chunk
    without CR (nearly every chunk of a real stream) costs one `in` test more than a plain split.
    """
    unfinished: list[str] = []  # the pieces of a line whose end has not arrived yet
    pending = 0  # their length
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
        # `unfinished` is all that grows, so the bound on a line's length is kept here.
        last = lines.pop()
        unfinished.append(last)
        if lines:
            if len(unfinished) > 1:
                lines[0] = "".join(unfinished[:-1]) + lines[0]
            unfinished, pending = ([last], len(last)) if last else ([], 0)
            yield from lines
        else:
            pending += len(last)
        if pending > limit:
            raise LineTooLongError(limit)
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
        try:
            yield from self._events()
        except LineTooLongError:
            raise self._too_long() from None

    def _too_long(self) -> InvokeBadRequestError:
        self.response.close()
        return InvokeBadRequestError(
            f"Event {self.count + 1} of the stream from {self.route_path} is longer than {EVENT_LIMIT:,} characters, "
            "the most the plugin reads for one event; the connection was closed."
        )

    def _events(self) -> Iterator[dict[str, Any]]:
        # An event stream is UTF-8 whatever its Content-Type says (decoded_text reads it so).
        lines = iter_lines(decoded_text(self.response))
        event_type, data, size = "", [], 0
        for line in lines:
            give_way()  # a gateway that sends faster than the plugin relays must not hold the hub
            if line:
                # Performance: `data:` lines, nearly all of a stream, are sliced once and not split.
                if line.startswith("data:"):
                    data.append(line[6:] if line[5:6] == " " else line[5:])
                    size += len(line)
                elif line[0] != ":":  # not a comment
                    name, _, value = line.partition(":")
                    value = value[1:] if value[:1] == " " else value
                    if name == "data":
                        data.append(value)  # a bare `data` line
                        size += len(line)
                    elif name == "event":
                        event_type = value
                if size > EVENT_LIMIT:
                    raise self._too_long()
                continue
            if data:
                if data[0] == _DONE and len(data) == 1:
                    self._finish(lines)
                    return
                if (event := self._event(event_type, data)) is not None:
                    self.count += 1
                    yield event
                event_type, data, size = "", [], 0
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
        open after [DONE] gets _DRAIN_SECONDS (a gevent timer: httpcore reads its read timeout
        once per body, so changing it now would change nothing), after which the connection is
        closed as it would have been anyway.
        """
        self.done = True
        try:
            with gevent.Timeout(_DRAIN_SECONDS, False):
                for count, _ in enumerate(lines):
                    if count >= _DRAIN_LINES:
                        return
        except (httpx.HTTPError, LineTooLongError):
            return
