"""What make bench replays: the emulator's `/_recorded/<file>/` answers and recorded streams scaled to N chunks.

The bench's figures are only about real traffic if the emulator sends the recorded bytes unchanged
and a scaled stream is the recording with its text and reasoning events repeated in place: the
same answer shape, N chunks long. These tests read the recordings themselves (tests/real_traces.py,
skipped when ../shared/real_traces is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.emulator import Consumer, GatewayEmulator, serve
from tests.emulator.recorded import sse_events
from tests.real_traces import needs_traces, read_chat_stream
from tests.tools.bench import STREAM_SHAPES
from tests.tools.recorded_shapes import repeatable, scaled

KEY = "sk-recorded"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    (tmp_path / "answer.json").write_bytes(b'{"text": "as recorded"}')
    (tmp_path / "stream.sse").write_bytes(b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n')
    return tmp_path


@pytest.fixture
def base_url(recorded: Path) -> str:
    emulator = GatewayEmulator(consumers=[Consumer("bench", api_key=KEY)], recorded_dir=recorded)
    with serve(emulator) as url:
        yield url


def test_a_recorded_json_answer_is_served_byte_for_byte(base_url: str) -> None:
    response = httpx.post(f"{base_url}/_recorded/answer.json/v1/audio/transcriptions", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"text": "as recorded"}'


def test_a_recorded_stream_is_served_one_event_per_write(base_url: str, recorded: Path) -> None:
    with httpx.stream("POST", f"{base_url}/_recorded/stream.sse/v1/chat/completions", headers=AUTH) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        pieces = list(response.iter_raw())
    assert b"".join(pieces) == (recorded / "stream.sse").read_bytes()
    assert pieces == [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]


def test_stream_faults_apply_to_a_recorded_stream(base_url: str) -> None:
    url = f"{base_url}/_recorded/stream.sse/_fault/ssecut/v1/chat/completions"
    assert httpx.post(url, headers=AUTH).content == b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'


def test_recorded_answers_are_behind_the_gateway_auth(base_url: str) -> None:
    assert httpx.post(f"{base_url}/_recorded/answer.json/v1/chat/completions").status_code == 401


def test_an_unknown_recorded_answer_is_a_404_naming_it(base_url: str) -> None:
    response = httpx.post(f"{base_url}/_recorded/missing.json/v1/chat/completions", headers=AUTH)
    assert response.status_code == 404
    assert "no recorded answer 'missing.json'" in response.text


@pytest.mark.parametrize("name", ["..", "."])
def test_only_files_of_the_folder_are_served(recorded: Path, name: str) -> None:
    # httpx would remove these dot segments; a client that sends them meets a 404, not a folder.
    response = GatewayEmulator(recorded_dir=recorded).handle("POST", f"/_recorded/{name}/v1/x")
    assert response.status == 404


def test_an_emulator_without_a_recorded_folder_says_so() -> None:
    response = GatewayEmulator().handle("POST", "/_recorded/a.json/v1/chat/completions")
    assert response.status == 404
    assert b"no recorded_dir" in response.read()


@needs_traces
@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=lambda shape: shape.name)
def test_a_stream_scaled_to_its_own_length_is_the_recording(shape) -> None:
    body = shape.body
    assert scaled(body, sum(map(repeatable, sse_events(body)))) == body


@needs_traces
@pytest.mark.parametrize("chunks", [7, 500, 20_000])
@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=lambda shape: shape.name)
def test_a_scaled_stream_repeats_recorded_events_in_place(shape, chunks: int) -> None:
    recorded = sse_events(shape.body)
    events = sse_events(scaled(shape.body, chunks))
    assert sum(map(repeatable, events)) == chunks
    assert set(events) <= set(recorded)  # every event byte for byte as recorded
    # What happens once (opening, tool-call fragments, finish, usage, [DONE]) is there once, in order.
    assert [e for e in events if not repeatable(e)] == [e for e in recorded if not repeatable(e)]
    # The recording stretched: its events in their order, each repeated in place (or, scaled down,
    # a repeatable one left out), so the phases keep their order.
    position = -1  # the recorded event the last scaled one is
    for event in events:
        if position >= 0 and event == recorded[position] and repeatable(event):
            continue
        position += 1
        while recorded[position] != event:
            assert repeatable(recorded[position])
            position += 1


@needs_traces
@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=lambda shape: shape.name)
def test_a_scaled_stream_has_the_recorded_answer_shape(shape) -> None:
    """Read by the independent reader: the same finish, usage and tool calls; more text, never other kinds."""
    original, bigger = read_chat_stream(shape.body), read_chat_stream(scaled(shape.body, 500))
    assert (bigger.finish_reason, bigger.prompt_tokens, bigger.completion_tokens, bigger.done) == (
        original.finish_reason,
        original.prompt_tokens,
        original.completion_tokens,
        original.done,
    )
    assert bigger.tool_calls == original.tool_calls
    assert bool(bigger.content) == bool(original.content) and bool(bigger.reasoning) == bool(original.reasoning)
    assert len(bigger.content) + len(bigger.reasoning) > len(original.content) + len(original.reasoning)


def test_what_is_repeatable() -> None:
    def event(delta: dict, **extra: object) -> bytes:
        data = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}], "usage": None, **extra}
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    assert repeatable(event({"content": "text", "reasoning_content": None}))
    assert repeatable(event({"content": None, "reasoning_content": "thinking"}))
    assert not repeatable(event({"role": "assistant", "content": ""}))
    # A tool call's fragments stay once: repeated, its arguments would no longer be the recorded JSON.
    assert not repeatable(event({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}))
    assert not repeatable(event({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f"}}]}))
    assert not repeatable(event({"content": "text", "reasoning_content": "both"}))
    assert not repeatable(event({"content": "text"}, usage={"prompt_tokens": 1}))
    assert not repeatable(b"data: [DONE]\n\n")
