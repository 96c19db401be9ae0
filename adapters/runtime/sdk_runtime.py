"""Speed-ups around the Dify SDK's start-up and stdio writer; main.py applies them.

Each is measured with `make bench` (README, "Performance"), and none changes a byte the daemon
receives:

1. The cyclic GC stays off while the SDK and the adapters load (main.py turns it off before its
   first import), then `end_of_start_up()` freezes what they built.
2. The SDK reads its YAML declarations with libyaml instead of pure-Python PyYAML.
3. LiteLLM starts loading right after the first heartbeat, not after a fixed delay.
4. Stream messages produced in a burst leave in one write to stdout instead of two writes each.
5. A stream chunk is serialized once, by its own model, instead of through three SDK models.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import yaml
from dify_plugin import Plugin

from adapters.engine.litellm_facade import start_loading


def end_of_start_up() -> None:
    """(1) Keep the ~145k objects the start-up built out of every later collection; GC back on."""
    gc.freeze()
    gc.enable()


@contextlib.contextmanager
def libyaml_for_the_sdk() -> Iterator[None]:
    """(2) The SDK's YAML loader with libyaml's parser: the same SafeConstructor, the same data.

    With PyYAML's pure-Python parser the SDK's registration of the plugin's declarations (manifest,
    provider with its translated forms, 24 model files) takes ~0.4 s, over half of the time to the
    first heartbeat; with libyaml ~0.12 s. Only the registration below uses it, and only where
    libyaml is compiled in (it is in PyYAML's wheels). Every file loads to equal data either way.
    """
    from dify_plugin.core.utils import yaml_loader

    loader = getattr(yaml, "CSafeLoader", None)
    original = yaml_loader.yaml
    if loader is not None:
        yaml_loader.yaml = SimpleNamespace(
            safe_load=lambda stream: yaml.load(stream, Loader=loader), YAMLError=yaml.YAMLError
        )
    try:
        yield
    finally:
        yaml_loader.yaml = original


def _load_litellm_after_first_heartbeat(server: Plugin) -> None:
    """(3) Start importing LiteLLM (~2 s, blocking the gevent hub) as soon as the first heartbeat is out.

    The daemon counts the plugin as started at its first heartbeat, so that heartbeat must not wait
    for the import; a fixed delay either wastes time before the first answer or, on a slow machine,
    still lets the import run first. Without a default writer (not stdio) it falls back to the delay.
    """
    writer = getattr(server, "default_writer", None)
    if writer is None:
        start_loading()
        return
    send_heartbeat = writer.heartbeat

    def heartbeat() -> None:
        send_heartbeat()
        if writer.heartbeat is heartbeat:
            writer.heartbeat = send_heartbeat  # every later heartbeat is the SDK's own again
            start_loading(delay=0)

    writer.heartbeat = heartbeat


class _BurstWriter:
    """(4) Installed as the SDK's stdio `write`: one write to stdout per burst of messages.

    The SDK writes each message as `write(json)` + `write("\\n\\n")`, each flushed: two system calls
    and two wake-ups of the daemon's reader per stream chunk, a fifth of the plugin's CPU per chunk
    (0.093 -> 0.074 ms per chunk of a 500-chunk stream with this change alone). Here a message that
    comes after a quiet moment (the first chunk, a heartbeat, a slow model's next token) still goes
    out at once, body and separator; messages that follow within WINDOW seconds of the last write
    are collected and written together when WINDOW has passed or, at the latest, when the greenlet
    writing them gives way to any other (a greenlet switch trace), so nothing waits behind other
    work. Bytes and their order are unchanged.
    """

    WINDOW = 0.001

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.last_write = 0.0

    def write(self, data: str) -> None:
        now = time.monotonic()
        if not self.parts and (now - self.last_write >= self.WINDOW or data == "\n\n"):
            self._send(data, now)  # after a quiet moment, or the separator of a message just sent
            return
        self.parts.append(data)
        if now - self.last_write >= self.WINDOW:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.parts:
            data = "".join(self.parts)
            self.parts.clear()
            self._send(data, time.monotonic() if now is None else now)

    def _send(self, data: str, now: float) -> None:
        sys.stdout.write(data)
        sys.stdout.flush()
        self.last_write = now

    def on_switch(self, event: str, args: Any) -> None:
        if self.parts:
            with contextlib.suppress(OSError, ValueError):  # stdout gone: the daemon is gone too
                self.flush()


# (5) The SDK's envelope of a stream message around a chunk's own JSON: {"event":"session",
# "session_id":…,"data":{"type":"stream","data":<chunk>}}, keys in the order of its models.
_STREAM_HEAD = '{"event":"session","session_id":'
_STREAM_DATA = ',"data":{"type":"stream","data":'


class _ChunkMessage:
    """An LLM stream chunk passing through the SDK's writer, to be serialized by its own model."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: Any) -> None:
        self.chunk = chunk


def chunk_message_json(session_id: str | None, chunk: Any) -> str:
    """(5) The SDK's stream message for an LLM chunk, serialized by the chunk's own model."""
    from pydantic_core import to_json

    return _STREAM_HEAD + to_json(session_id).decode() + _STREAM_DATA + chunk.model_dump_json() + "}}"


def _tune_stdio_writer() -> None:
    """(4) and (5): the SDK's stdio writer, with its per-chunk work cut down. Same bytes, same order.

    (5) For each stream chunk the SDK dumps the chunk to a dict, validates it into a SessionMessage,
    dumps that again, validates it into a StreamOutputMessage and serializes the nested dict value by
    value (~15 us, the largest single cost of a streamed chunk). An LLMResultChunk is instead
    serialized once by its own pydantic model and put inside the same envelope: the same serializer
    on the same values, so the same JSON (~3 us; checked byte for byte against the SDK's path on
    every chunk of the test suite). Any other message takes the SDK's own path.

    The contract relied on (every stdio message goes through StdioResponseWriter.write, from
    greenlets of the main thread; stream items through stream_object + session_message; the
    envelope's field order) is that of dify_plugin 0.10, the pinned version; any other version keeps
    the SDK's writer untouched.
    """
    if not version("dify_plugin").startswith("0.10."):
        return
    import greenlet
    from dify_plugin.core.server.__base.response_writer import ResponseWriter
    from dify_plugin.core.server.stdio.response_writer import StdioResponseWriter
    from dify_plugin.entities.model.llm import LLMResultChunk

    def stream_object(self: ResponseWriter, data: Any) -> Any:
        if type(data) is LLMResultChunk:
            return _ChunkMessage(data)
        return ResponseWriter.stream_object(self, data)

    def session_message(self: ResponseWriter, session_id: str | None = None, data: Any = None) -> None:
        if not isinstance(data, _ChunkMessage):
            return ResponseWriter.session_message(self, session_id, data)
        self.write(chunk_message_json(session_id, data.chunk))
        self.write("\n\n")
        return None

    burst = _BurstWriter()
    previous = greenlet.gettrace()

    def trace(event: str, args: Any) -> None:
        burst.on_switch(event, args)
        if previous is not None:
            previous(event, args)

    greenlet.settrace(trace)
    StdioResponseWriter.write = lambda self, data: burst.write(data)
    StdioResponseWriter.stream_object = stream_object
    StdioResponseWriter.session_message = session_message


def serve(plugin: Plugin) -> None:
    """Run the plugin on stdio with (3), (4) and (5) in place."""
    _load_litellm_after_first_heartbeat(plugin)
    _tune_stdio_writer()
    plugin.run()
