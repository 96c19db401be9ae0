"""What the plugin reads from the gateway is bounded in size and time, whatever the gateway sends.

Each test points a model at a mode of the emulator (tests/emulator/bounds.py): a gzip
answer inflating to a gigabyte, an answer past its model type's bound, a body dripping a byte at a
time, a stream that never ends. Each must end quickly in an error naming the bound. The plugin
process's own peak memory under the same answers is measured over stdio in tests/test_bounds_stdio.py.
"""

from __future__ import annotations

import time

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeBadRequestError, InvokeConnectionError, InvokeServerUnavailableError

from adapters.gateway.limits import (
    ANSWER_LIMITS,
    EVENT_LIMIT,
    INVOCATION_TIMEOUT_VARIABLE,
    MIB,
    STREAM_TEXT_LIMIT,
    describe,
)
from tests.conftest import adapter
from tests.test_fault_matrix import INVOKERS, _litellm_loaded  # noqa: F401 - its import is not part of a bound

MODEL_TYPES = {
    "llm-blocking": "llm",
    "embedding-openai": "text-embedding",
    "embedding-dashscope": "text-embedding",
    "rerank-cohere": "rerank",
    "rerank-dashscope": "rerank",
    "speech2text": "speech2text",
    "tts-openai": "tts",
    "tts-dashscope": "tts",
}


def _chat(credentials: dict, *, stream: bool) -> str:
    chunks = adapter("llm").invoke("qwen-max", credentials, [UserPromptMessage(content="a b c")], {}, stream=stream)
    return "".join(chunk.delta.message.content for chunk in chunks)  # the SDK relays a blocking answer as one chunk


def _failure(call, *args, **kwargs) -> tuple[Exception, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        call(*args, **kwargs)
    return caught.value, time.monotonic() - started


def test_a_gzip_bomb_is_cut_at_the_bound_on_decoded_bytes(gateway) -> None:
    """1 GiB of JSON whitespace, 1 MB on the wire: cut once 16 MiB are inflated, not read whole."""
    error, seconds = _failure(_chat, gateway.credentials("/_fault/gzip-bomb-1024"), stream=False)
    assert isinstance(error, InvokeBadRequestError)
    assert f"larger than the {describe(ANSWER_LIMITS['llm'])} the plugin reads for llm answers" in str(error)
    assert "after decompression" in str(error) and "connection was closed" in str(error)
    assert seconds < 5


def test_a_gzip_answer_within_the_bound_is_read(gateway) -> None:
    assert _chat(gateway.credentials("/_fault/gzip-bomb-2"), stream=False) == "echo: a b c"


@pytest.mark.parametrize("call", list(MODEL_TYPES))
def test_every_model_type_stops_reading_at_its_bound(gateway, call: str) -> None:
    model_type = MODEL_TYPES[call]
    mib = ANSWER_LIMITS[model_type] // MIB + 1
    error, seconds = _failure(INVOKERS[call], gateway.credentials(f"/_fault/bloat-{mib}"))
    assert isinstance(error, InvokeBadRequestError), error
    assert f"{describe(ANSWER_LIMITS[model_type])} the plugin reads for {model_type} answers" in str(error)
    assert seconds < 5


def test_a_stream_line_without_end_is_cut_at_the_event_bound(gateway) -> None:
    error, seconds = _failure(_chat, gateway.credentials("/_fault/sse-line-64"), stream=True)
    assert isinstance(error, InvokeBadRequestError), error
    assert f"Event 1 of the stream from /_fault/sse-line-64/v1/chat/completions is longer than {EVENT_LIMIT:,}" in str(
        error
    )
    assert seconds < 5


def test_an_error_body_is_read_only_to_its_bound(gateway) -> None:
    """A 500 whose body is a gzip bomb is still the gateway's 500, read no further than 64 KiB."""
    error, seconds = _failure(_chat, gateway.credentials("/_fault/status-500/_fault/gzip-bomb-1024"), stream=False)
    assert isinstance(error, InvokeServerUnavailableError)
    assert "AI Gateway answered HTTP 500" in str(error)
    assert seconds < 5


@pytest.mark.parametrize("call", ["llm-blocking", "llm-stream", *list(MODEL_TYPES)[1:]])
def test_every_model_type_ends_at_the_invocation_deadline(gateway, monkeypatch, call: str) -> None:
    """A gateway that never answers is cut at the deadline, not at the 300 s read timeout."""
    monkeypatch.setenv(INVOCATION_TIMEOUT_VARIABLE, "0.5")
    error, seconds = _failure(INVOKERS[call], gateway.credentials("/_fault/stall-30"))
    assert isinstance(error, InvokeConnectionError), error
    assert f"deadline of 0.5 s ({INVOCATION_TIMEOUT_VARIABLE})" in str(error)
    assert "/v1/" in str(error) and "connection was closed" in str(error)
    assert seconds < 3


def test_a_stream_that_never_ends_is_cut_at_the_deadline(gateway, monkeypatch) -> None:
    monkeypatch.setenv(INVOCATION_TIMEOUT_VARIABLE, "1")
    chunks = adapter("llm").invoke(
        "qwen-max",
        gateway.credentials("/_fault/endless/_fault/slow-chunks-20"),
        [UserPromptMessage(content="a b c")],
        {},
        stream=True,
    )
    started, received = time.monotonic(), 0
    with pytest.raises(InvokeConnectionError, match=r"deadline of 1 s"):
        for _ in chunks:
            received += 1
    assert received > 10  # it did stream until then
    assert time.monotonic() - started < 3


def test_a_stream_keeps_no_more_text_than_its_bound(gateway) -> None:
    """A stream without end of 64 KiB words is cut when what it keeps for the last chunk passes 16 Mi
    characters, long before the deadline."""
    chunks = adapter("llm").invoke(
        "qwen-max", gateway.credentials("/_fault/endless"), [UserPromptMessage(content="x" * 65536)], {}, stream=True
    )
    started = time.monotonic()
    with pytest.raises(InvokeBadRequestError, match=f"more than {STREAM_TEXT_LIMIT:,} characters"):
        for _ in chunks:
            pass
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("stream", [False, True])
def test_a_dripping_body_is_cut_after_one_read_timeout(gateway, stream: bool) -> None:
    """One byte every 0.1 s never trips a read timeout of 1 s; the floor of 256 bytes per read
    timeout cuts it after about 1 s."""
    error, seconds = _failure(_chat, gateway.credentials("/_fault/drip-0.1", timeout="1"), stream=stream)
    assert isinstance(error, InvokeConnectionError), error
    assert "fewer than 256 bytes arrived in 1 s (read timeout; set by credential field 'timeout')" in str(error)
    assert seconds < 4


@pytest.mark.parametrize("stream", [False, True])
def test_a_body_that_falls_silent_ends_at_the_read_timeout(gateway, stream: bool) -> None:
    error, seconds = _failure(_chat, gateway.credentials("/_fault/stall-midstream-5", timeout="1"), stream=stream)
    assert isinstance(error, InvokeConnectionError)
    assert "read timeout" in str(error)
    assert seconds < 3


def test_no_retry_waits_past_the_deadline(gateway, monkeypatch) -> None:
    """A 429 asking for a 3 s pause is reported at once when the deadline is 1 s away."""
    monkeypatch.setenv(INVOCATION_TIMEOUT_VARIABLE, "1")
    credentials = gateway.credentials("/_fault/status-429-retry-after", max_retries="2")
    error, seconds = _failure(_chat, credentials, stream=False)
    assert "HTTP 429" in str(error)
    assert seconds < 1
    assert gateway.emulator.hits("/v1/chat/completions") == 1


@pytest.mark.parametrize("value", ["0", "-3", "soon", "100000"])
def test_a_bad_deadline_setting_names_the_variable(gateway, monkeypatch, value: str) -> None:
    monkeypatch.setenv(INVOCATION_TIMEOUT_VARIABLE, value)
    error, _ = _failure(_chat, gateway.credentials(), stream=False)
    assert f"Environment variable {INVOCATION_TIMEOUT_VARIABLE}: must be a number of seconds" in str(error)
