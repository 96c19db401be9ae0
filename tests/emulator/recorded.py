"""Answers served byte for byte from files: `/_recorded/<file>/` before the route suffix.

The emulator is handed a folder (`GatewayEmulator(recorded_dir=...)`, `--recorded DIR` as a
process). A request whose path carries `/_recorded/<file>/` is answered, after consumer auth and
the early faults, with that file: an `.sse` file as `text/event-stream`, one event per write
(events end at a blank line, LF LF), with the stream faults applied (`slow-chunks-MS`, `ssecut`,
...); any other file as one `application/json` body. make bench writes recorded real answers
there, scaled to N chunks (tests/tools/recorded_shapes.py), so the plugin and the raw client it is
compared with read the same bytes. Each file is read once and kept.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .faults import Faults
from .responses import JSON, text_response
from .wire import Response

__all__ = ["RecordedAnswers", "recorded_name"]

SSE = "text/event-stream; charset=utf-8"
_SEGMENT = "_recorded"


def recorded_name(path: str) -> str | None:
    """The file named by a `/_recorded/<file>/` segment of `path`, if there is one."""
    segments = path.split("/")
    for index, segment in enumerate(segments[:-1]):
        if segment == _SEGMENT:
            return segments[index + 1]
    return None


def sse_events(body: bytes) -> list[bytes]:
    """The events of an SSE body, each with the blank line that ends it."""
    parts = body.split(b"\n\n")
    events = [part + b"\n\n" for part in parts[:-1]]
    return [*events, parts[-1]] if parts[-1] else events


class RecordedAnswers:
    """The files of one folder, served as answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._lock = threading.Lock()
        self._kept: dict[str, bytes | list[bytes]] = {}

    def respond(self, name: str, faults: Faults) -> Response:
        path = self.folder / name  # one path segment: never outside the folder ("." and ".." are not files)
        if not path.is_file():
            return text_response(f"no recorded answer {name!r} in {self.folder}", 404)
        with self._lock:
            kept = self._kept.get(name)
            if kept is None:
                body = path.read_bytes()
                kept = self._kept[name] = sse_events(body) if path.suffix == ".sse" else body
        if isinstance(kept, bytes):
            return Response(200, [("Content-Type", JSON)], kept)
        return Response(200, [("Content-Type", SSE), ("Cache-Control", "no-cache")], faults.shape_stream(kept))
