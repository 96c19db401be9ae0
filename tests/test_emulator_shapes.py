"""The emulator writes chat answers in the shapes DashScope's compatible mode was recorded writing.

A shape is an answer with its values blanked out: its keys in order, nested, with null where the
recording has null and a type name elsewhere. Every chunk of an emulator stream must have a shape
some chunk of the matching recording has (DashScope varies a choice's key order between chunks,
so the recording offers several), and its blocking answer the shape of the recorded one. The
recordings are ../shared/real_traces (tests/real_traces.py); without them these tests skip.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emulator import GatewayEmulator
from tests.real_traces import BODIES_DIR, needs_traces, sse_events

pytestmark = needs_traces
_TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((key, shape(item)) for key, item in value.items())
    if isinstance(value, list):
        return ("list", *sorted({repr(shape(item)) for item in value}))
    return None if value is None else type(value).__name__


def _stream_shapes(body: bytes) -> list[Any]:
    return [shape(json.loads(data)) for _, data in sse_events(body) if data != "[DONE]"]


def _ask(model: str, stream: bool, **extra: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "how is the weather"}], "stream": stream}
    return GatewayEmulator().handle("POST", "/v1/chat/completions", json_body={**body, **extra}).read()


@pytest.mark.parametrize(
    ("recording", "model", "extra"),
    [
        ("ds-qwen3max-text-stream.sse", "qwen3-max", {}),
        ("ds-qwen3max-reasoning-stream.sse", "qwen3-max", {"enable_thinking": True}),
        ("ds-qwen3max-toolcall-stream.sse", "qwen3-max", {"tools": _TOOLS}),
    ],
)
def test_every_stream_chunk_has_a_recorded_shape(recording: str, model: str, extra: dict) -> None:
    recorded = set(_stream_shapes((BODIES_DIR / recording).read_bytes()))
    emulated = _stream_shapes(_ask(model, True, **extra))
    unknown = [s for s in emulated if s not in recorded]
    assert not unknown, f"shapes {recording} never has: {unknown[:2]}"
    assert len(set(emulated)) >= 4  # opening, answer, finish and usage chunks at least


@pytest.mark.parametrize(
    ("recording", "model", "extra"),
    [
        ("ds-qwenplus-json.json", "qwen-plus", {}),
        ("ds-qwenplus-reasoning-json.json", "qwen-plus", {"enable_thinking": True}),
        ("ds-qwen3max-toolcall-json.json", "qwen3-max", {"tools": _TOOLS}),
    ],
)
def test_a_blocking_answer_has_the_recorded_shape(recording: str, model: str, extra: dict) -> None:
    recorded = json.loads((BODIES_DIR / recording).read_bytes())
    assert shape(json.loads(_ask(model, False, **extra))) == shape(recorded)
