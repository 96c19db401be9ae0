"""The emulator's gateway behaviours the plugin's gateway features meet: consumers whose keys fail on
their own, the model list, Higress ai-cache and its skip header, cached prompt tokens in usage, and
transcripts of `input_audio` chat parts."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from tests.emulator import Consumer, GatewayEmulator
from tests.emulator.faults import UnknownFaultError

CHAT = "/v1/chat/completions"


def _chat(emulator: GatewayEmulator, text: Any, *, path: str = CHAT, key: str = "sk-a", stream: bool = False,
          headers: dict[str, str] | None = None):  # fmt: skip
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": text}], "stream": stream}
    return emulator.handle("POST", path, headers={"Authorization": f"Bearer {key}", **(headers or {})}, json_body=body)


def _events(raw: bytes) -> list[dict[str, Any]]:
    lines = [line.removeprefix("data:").strip() for line in raw.decode().splitlines() if line.startswith("data:")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


@pytest.fixture
def two_consumers() -> GatewayEmulator:
    return GatewayEmulator([Consumer("team-a", api_key="sk-a"), Consumer("team-b", api_key="sk-b")])


def test_a_consumer_fault_strikes_that_consumer_only_until_cleared(two_consumers: GatewayEmulator) -> None:
    two_consumers.fault_consumer("team-a", "status-429")
    spent = _chat(two_consumers, "hi", key="sk-a")
    assert spent.status == 429 and spent.header("X-TokenRateLimit-Reset") == "7"
    assert _chat(two_consumers, "hi", key="sk-b").status == 200
    two_consumers.fault_consumer("team-b", "status-403")
    assert _chat(two_consumers, "hi", key="sk-b").status == 403
    two_consumers.fault_consumer("team-a", None)
    assert _chat(two_consumers, "hi", key="sk-a").status == 200
    assert [r.consumer for r in two_consumers.received] == ["team-a", "team-b", "team-b", "team-a"]
    two_consumers.clear()
    assert _chat(two_consumers, "hi", key="sk-b").status == 200


def test_an_unknown_consumer_fault_is_refused_at_once(two_consumers: GatewayEmulator) -> None:
    with pytest.raises(UnknownFaultError):
        two_consumers.fault_consumer("team-a", "status-999")


def test_the_model_list_is_absent_until_configured() -> None:
    emulator = GatewayEmulator()
    assert emulator.handle("GET", "/v1/models").status == 404
    emulator.serve_models(["qwen-plus", "qwen-max"])
    listed = json.loads(emulator.handle("GET", "/team/v1/models").read())
    assert [m["id"] for m in listed["data"]] == ["qwen-plus", "qwen-max"]
    emulator.clear()
    assert emulator.handle("GET", "/v1/models").status == 404
    assert GatewayEmulator(models=["m"]).handle("GET", "/v1/models").status == 200


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_ai_cache_answers_a_repeated_question_from_the_cache(two_consumers: GatewayEmulator, stream: bool) -> None:
    path = "/_fault/ai-cache" + CHAT
    first = _chat(two_consumers, "what is higress", path=path, stream=stream)
    second = _chat(two_consumers, "what is higress", path=path, stream=stream)
    if stream:
        (cached,) = _events(second.read())
        assert b"data:{" in second.read() and second.read().endswith(b"data:[DONE]\n\n")
        assert cached["choices"][0]["delta"]["content"] == "echo: what is higress"
        assert cached["object"] == "chat.completion" and cached["choices"][0]["finish_reason"] == "stop"
        assert "".join(e["choices"][0]["delta"].get("content") or "" for e in _events(first.read()) if e["choices"])
    else:
        cached = json.loads(second.read())
        assert (
            cached["choices"][0]["message"]["content"] == json.loads(first.read())["choices"][0]["message"]["content"]
        )
    assert cached["model"] == cached["id"] == "from-cache"
    assert cached["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    # Another question misses; without the segment there is no cache at all.
    assert json.loads(_chat(two_consumers, "something else", path=path).read())["model"] == "qwen-plus"
    assert json.loads(_chat(two_consumers, "what is higress").read())["model"] == "qwen-plus"


def test_the_skip_header_neither_reads_nor_fills_the_cache(two_consumers: GatewayEmulator) -> None:
    path, skip = "/_fault/ai-cache" + CHAT, {"x-higress-skip-ai-cache": "on"}
    _chat(two_consumers, "q1", path=path)
    assert json.loads(_chat(two_consumers, "q1", path=path, headers=skip).read())["model"] == "qwen-plus"
    _chat(two_consumers, "q2", path=path, headers=skip)
    assert json.loads(_chat(two_consumers, "q2", path=path).read())["model"] == "qwen-plus"  # was not stored
    assert json.loads(_chat(two_consumers, "q2", path=path).read())["model"] == "from-cache"


def test_cached_prompt_tokens_in_both_vendors_fields(two_consumers: GatewayEmulator) -> None:
    usage = json.loads(_chat(two_consumers, "a b c d", path="/_fault/cached-3" + CHAT).read())["usage"]
    assert usage["prompt_tokens"] == 4 and usage["prompt_tokens_details"] == {"cached_tokens": 3}
    streamed = _events(_chat(two_consumers, "a b", path="/_fault/cached-9" + CHAT, stream=True).read())
    assert streamed[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}  # never above the prompt
    deepseek = json.loads(_chat(two_consumers, "a b c d", path="/_fault/deepseek-cached-1" + CHAT).read())["usage"]
    assert (deepseek["prompt_cache_hit_tokens"], deepseek["prompt_cache_miss_tokens"]) == (1, 3)
    assert "prompt_tokens_details" not in deepseek
    minimal = json.loads(_chat(two_consumers, "a b", path="/_fault/minimal-shapes/_fault/cached-1" + CHAT).read())
    assert minimal["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}


def test_an_input_audio_part_is_transcribed(two_consumers: GatewayEmulator) -> None:
    audio = b"RIFF....WAVEfmt some audio"
    data = "data:audio/wav;base64," + base64.b64encode(audio).decode()
    part = {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    answer = json.loads(_chat(two_consumers, [part]).read())
    digest = hashlib.sha256(audio).hexdigest()[:12]
    expected = f"transcript of input_audio: {len(audio)} bytes, sha256 {digest}"
    assert answer["choices"][0]["message"]["content"] == expected
    info = {"type": "audio_info", "language": "en", "emotion": "neutral"}
    assert answer["choices"][0]["message"]["annotations"] == [info]
    url = {"type": "input_audio", "input_audio": {"data": "https://example.com/a.mp3"}}
    assert json.loads(_chat(two_consumers, [url]).read())["choices"][0]["message"]["content"].endswith("a.mp3")
    raw = {"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode()}}
    refused = _chat(two_consumers, [raw])
    assert refused.status == 400 and "data URL" in json.loads(refused.read())["error"]["message"]
