"""The patches of the Dify SDK's start-up and writer that pay on real traffic; main.py applies them.

`make bench-patches` runs each against the plugin without it (DEVELOPING.md, "Performance", has the
numbers); tests/test_sdk_runtime.py checks what each docstring here says, and nothing more:

1. The cyclic GC stays off while the SDK and the adapters load, then what they built is frozen.
2. The SDK reads its YAML declarations with libyaml; every file loads to the same data.
3. LiteLLM's import starts once, right after the first heartbeat is written.
4. An LLM stream chunk is serialized once, by its own model (a chunk of text alone by a template
   that gives the same bytes), and leaves with its separator in one write, on stdio and on the
   remote-debug TCP stream alike; the bytes are the SDK's.

Measured and removed: a writer that gathered the stdout writes of a burst of messages into one (it
helped only a stream that arrives pre-buffered and cost CPU on paced and concurrent streams).
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
from dify_plugin.entities.model.message import AssistantPromptMessage, PromptMessageRole
from pydantic_core import to_json

from adapters.engine.litellm_facade import start_loading


def end_of_start_up() -> None:
    """(1) The GC, off since main.py's first line (no collection ran while the start-up built its
    long-lived objects), back on with those objects frozen: later collections leave them alone."""
    gc.freeze()
    gc.enable()


@contextlib.contextmanager
def libyaml_for_the_sdk() -> Iterator[None]:
    """(2) The SDK's YAML loader with libyaml's parser (the same SafeConstructor) inside this block.

    main.py wraps only the SDK's registration of the plugin's declarations in it (the manifest and
    provider_configs/dify/). Every one of those files loads to the same data as with PyYAML's
    pure-Python parser, a broken file is still the SDK's YAMLError naming it, and the SDK's own
    loader is back afterwards. Where PyYAML lacks libyaml the SDK's loader is left as it is.
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
    """(3) Start importing LiteLLM once, right after the first heartbeat has been written.

    The daemon counts the plugin as started at its first heartbeat, and the import blocks the gevent
    hub for seconds, so it must not run before that heartbeat; started then, a first request that
    comes later finds LiteLLM loaded. Later heartbeats are the SDK's own again. Without a default
    writer the import starts after start_loading()'s usual delay.
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


# (4) The SDK's envelope of a stream message around a chunk's own JSON: {"event":"session",
# "session_id":…,"data":{"type":"stream","data":<chunk>}}, keys in the order of its models.
_STREAM_HEAD = '{"event":"session","session_id":'
_STREAM_DATA = ',"data":{"type":"stream","data":'


class _ChunkMessage:
    """An LLM stream chunk passing through the SDK's writer, to be serialized by its own model."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: Any) -> None:
        self.chunk = chunk


def chunk_message_json(session_id: str | None, chunk: Any) -> str:
    """(4) The SDK's stream message for an LLM chunk, serialized by the chunk's own model."""
    return _STREAM_HEAD + to_json(session_id).decode() + _STREAM_DATA + _chunk_json(chunk) + "}}"


def _chunk_json(chunk: Any) -> str:
    """The chunk's own model_dump_json(); a chunk of text alone by the template that gives the same.

    Performance: nearly every chunk of a stream carries text and nothing else (the plugin's stream
    relay makes them so), and its JSON is the same around three values: the model, the index and
    the text, each serialized here by pydantic_core as the model serializes them (~1 us instead of
    ~6 us per chunk). Any field off its default sends the chunk to its model.
    """
    delta = chunk.delta
    message = delta.message
    if (
        type(message) is AssistantPromptMessage
        and type(message.content) is str
        and message.role is PromptMessageRole.ASSISTANT
        and not message.tool_calls
        and message.name is None
        and message.opaque_body is None
        and delta.usage is None
        and delta.finish_reason is None
        and type(delta.index) is int
        and not chunk.prompt_messages
        and chunk.system_fingerprint is None
        and type(chunk.model) is str
    ):
        return (
            _TEXT_MODEL + to_json(chunk.model).decode() + _TEXT_INDEX + str(delta.index) + _TEXT_CONTENT
            + to_json(message.content).decode() + _TEXT_END
        )  # fmt: skip
    return chunk.model_dump_json()


# LLMResultChunk.model_dump_json() of a text chunk, fields in the order of the SDK's models (0.10).
_TEXT_MODEL = '{"model":'
_TEXT_INDEX = ',"prompt_messages":[],"system_fingerprint":null,"delta":{"index":'
_TEXT_CONTENT = ',"message":{"role":"assistant","content":'
_TEXT_END = ',"name":null,"tool_calls":[],"opaque_body":null},"usage":null,"finish_reason":null}}'


def serialize_chunks_once() -> None:
    """(4) The SDK's writers serialize an LLM stream chunk once, by its own model, and write it once.

    For each stream chunk the SDK dumps the chunk to a dict, validates it into a SessionMessage,
    dumps that again, validates it into a StreamOutputMessage, serializes the nested dict value by
    value and writes the JSON and its "\\n\\n" separator in two writes. An LLMResultChunk is instead
    serialized once by its own pydantic model, put inside the same envelope and written together with
    its separator; any other message takes the SDK's own path. Installed on the SDK's base
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
