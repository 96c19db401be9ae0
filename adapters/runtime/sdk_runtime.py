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


def load_litellm_after_first_heartbeat(server: Plugin) -> None:
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


def serialize_chunks_once() -> None:
    """(5) The SDK's writers serialize an LLM stream chunk once, by its own model. Same bytes.

    For each stream chunk the SDK dumps the chunk to a dict, validates it into a SessionMessage,
    dumps that again, validates it into a StreamOutputMessage and serializes the nested dict value by
    value. An LLMResultChunk is instead serialized once by its own pydantic model and put inside the
    same envelope; any other message takes the SDK's own path. Installed on the SDK's base
    ResponseWriter, so the stdio writer (production) and the TCP writer (remote debugging) share it.

    The contract relied on (stream items go through stream_object + session_message; the envelope's
    field order) is that of dify_plugin 0.10, the pinned version; any other version keeps the SDK's
    own serialization.
    """
    if not version("dify_plugin").startswith("0.10."):
        return
    from dify_plugin.core.server.__base.response_writer import ResponseWriter
    from dify_plugin.entities.model.llm import LLMResultChunk

    sdk_stream_object = ResponseWriter.stream_object
    sdk_session_message = ResponseWriter.session_message

    def stream_object(self: ResponseWriter, data: Any) -> Any:
        if type(data) is LLMResultChunk:
            return _ChunkMessage(data)
        return sdk_stream_object(self, data)

    def session_message(self: ResponseWriter, session_id: str | None = None, data: Any = None) -> None:
        if not isinstance(data, _ChunkMessage):
            return sdk_session_message(self, session_id, data)
        self.write(chunk_message_json(session_id, data.chunk) + "\n\n")
        return None

    ResponseWriter.stream_object = stream_object
    ResponseWriter.session_message = session_message
