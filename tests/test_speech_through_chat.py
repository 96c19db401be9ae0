"""Speech to text through the chat route (qwen3-asr-flash): the audio as an input_audio part, the transcript back.

The emulator answers a chat whose last user message has an input_audio data URL with "transcript of
input_audio: N bytes, sha256 <12 hex>" of the decoded bytes, so a test can tell that the data URL
carried exactly the bytes Dify handed over. No recording of a real Qwen-ASR answer exists here: the
answer shapes are the chat completions the emulator writes as DashScope's compatible mode does, plus
hand-written answers for what it never sends (an empty message).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from adapters.catalog.loader import CatalogError, default_catalog, load_catalog
from adapters.catalog.resolver import customizable_model
from adapters.models.audio import silence_wav
from tests.conftest import PLUGIN_ROOT, TEST_KEY, Gateway, adapter
from tests.emulator import Consumer, GatewayEmulator, serve
from tests.emulator.hostile import big_text
from tests.stdio_driver import PluginProcess, PluginSessionError
from tests.test_forms import GATEWAY, dify_saves, forms
from tests.test_speech2text import SAMPLES

MODEL = "qwen3-asr-flash"
PATH = "/v1/chat/completions"
ROUTE = "openai-chat-transcription"
MEGABYTE = 1024 * 1024


def _transcript(audio: bytes) -> str:
    return f"transcript of input_audio: {len(audio)} bytes, sha256 {hashlib.sha256(audio).hexdigest()[:12]}"


def _data_url(audio: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(audio).decode('ascii')}"


def _saying(words: bytes) -> bytes:
    """A real WAV whose samples are `words` (what the emulator's content security hears)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(words + b"\x00" * (len(words) % 2))
    return buffer.getvalue()


def _own_model(gateway: Gateway, base_path: str = "", **options: str) -> dict[str, str]:
    """A model added by name on the speech-through-chat route, with `options` in model_options."""
    packed = "; ".join(f"{k}={v}" for k, v in options.items())
    fields = {"route_preset": ROUTE} | ({"model_options": packed} if packed else {})
    return gateway.credentials(base_path, **fields)


def test_the_audio_goes_as_one_input_audio_data_url_and_the_answer_text_comes_back(gateway: Gateway) -> None:
    audio = silence_wav(0.3)
    text = adapter("speech2text").invoke(MODEL, gateway.credentials(), io.BytesIO(audio))
    assert text == _transcript(audio)
    received = gateway.emulator.received[-1]
    assert received.path == PATH
    # Exactly the documented body: one user message of one part, no stream fields, no options unasked.
    assert received.json() == {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": _data_url(audio, "audio/wav")}}],
            }
        ],
    }


@pytest.mark.parametrize("extension", SAMPLES)
def test_the_data_url_names_the_mime_type_the_bytes_show(gateway: Gateway, extension: str) -> None:
    audio, content_type = SAMPLES[extension]
    assert adapter("speech2text").invoke(MODEL, gateway.credentials(), io.BytesIO(audio)) == _transcript(audio)
    (part,) = gateway.last_json()["messages"][0]["content"]
    assert part["input_audio"]["data"] == _data_url(audio, content_type)


def test_every_listed_snapshot_takes_the_same_route(gateway: Gateway) -> None:
    for name in ("qwen3-asr-flash-2025-09-08", "qwen3-asr-flash-2026-02-10"):
        adapter("speech2text").invoke(name, gateway.credentials(), io.BytesIO(silence_wav()))
        assert gateway.emulator.received[-1].path == PATH and gateway.last_json()["model"] == name


def test_audio_over_the_base64_bound_is_refused_before_any_request(gateway: Gateway) -> None:
    # 8 MB is within the 10 MB upload limit, but 10.7 MB as base64: past qwen3-asr-flash's 10 MB.
    audio = silence_wav(0.01) + bytes(8 * MEGABYTE)
    with pytest.raises(InvokeBadRequestError) as caught:
        adapter("speech2text").invoke(MODEL, gateway.credentials(), io.BytesIO(audio))
    assert str(caught.value) == (
        f"Model '{MODEL}': the audio is 10.7 MB as base64 (8.0 MB of wav); "
        "the model takes at most 10 MB of base64 audio."
    )
    assert gateway.emulator.received == []


def test_a_model_added_by_name_sets_its_own_base64_bound(gateway: Gateway) -> None:
    audio = silence_wav(0.01) + bytes(MEGABYTE)  # 1.3 MB as base64
    with pytest.raises(InvokeBadRequestError, match=r"1\.3 MB as base64 .* at most 1 MB of base64 audio"):
        adapter("speech2text").invoke("qwen-omni", _own_model(gateway, base64_audio_limit="1"), io.BytesIO(audio))
    assert gateway.emulator.received == []
    text = adapter("speech2text").invoke("qwen-omni", _own_model(gateway, base64_audio_limit="2"), io.BytesIO(audio))
    assert text == _transcript(audio)


def test_language_and_prompt_go_where_the_chat_takes_them(gateway: Gateway) -> None:
    audio = silence_wav()
    credentials = _own_model(gateway, prompt="AI 网关") | {"language": "zh"}
    adapter("speech2text").invoke("qwen3-asr-flash", credentials, io.BytesIO(audio))
    body = gateway.last_json()
    assert body["asr_options"] == {"language": "zh"}
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "AI 网关"}
    # The provider's credentials carry neither: the catalog model sends none.
    adapter("speech2text").invoke(MODEL, gateway.credentials(), io.BytesIO(audio))
    assert "asr_options" not in gateway.last_json() and len(gateway.last_json()["messages"][0]["content"]) == 1


def test_a_strict_backend_accepts_the_body() -> None:
    # A backend refusing unknown fields (DashScope's extras allowed) takes asr_options.
    emulator = GatewayEmulator(consumers=[Consumer(name="a", api_key=TEST_KEY)], strict_fields=True)
    with serve(emulator) as base_url:
        gateway = Gateway(emulator, base_url)
        credentials = _own_model(gateway, stream_only="true") | {"language": "en"}
        audio = silence_wav()
        assert adapter("speech2text").invoke(MODEL, credentials, io.BytesIO(audio)) == _transcript(audio)
        assert gateway.emulator.received[-1].status == 200


def test_a_stream_only_model_is_streamed_and_its_deltas_joined(gateway: Gateway) -> None:
    audio = silence_wav(0.2)
    text = adapter("speech2text").invoke("qwen-omni", _own_model(gateway, stream_only="true"), io.BytesIO(audio))
    assert text == _transcript(audio)
    body = gateway.last_json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert gateway.emulator.received[-1].headers["accept"] == "text/event-stream"


def test_a_stream_cut_before_its_end_is_an_unusable_answer(gateway: Gateway) -> None:
    credentials = _own_model(gateway, "/_fault/ssecut", stream_only="true")
    with pytest.raises(InvokeServerUnavailableError, match="closed before \\[DONE\\]"):
        adapter("speech2text").invoke("qwen-omni", credentials, io.BytesIO(silence_wav()))


def test_an_error_inside_the_stream_is_the_gateways_error(gateway: Gateway) -> None:
    credentials = _own_model(gateway, "/_fault/sseerror", stream_only="true")
    with pytest.raises(InvokeServerUnavailableError, match="emulated mid-stream failure"):
        adapter("speech2text").invoke("qwen-omni", credentials, io.BytesIO(silence_wav()))


def test_stream_only_needs_a_route_that_streams(gateway: Gateway, tmp_path: Path) -> None:
    credentials = gateway.credentials(route_preset="openai-transcriptions", model_options="stream_only=true")
    with pytest.raises(CredentialsValidateFailedError, match=r"stream_only.*'openai-transcriptions' cannot stream"):
        customizable_model("m", "speech2text", credentials, default_catalog())
    root = tmp_path / "provider_configs"
    for source in (PLUGIN_ROOT / "provider_configs").glob("*.yaml"):
        (root / source.name).parent.mkdir(parents=True, exist_ok=True)
        (root / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (root / "models").mkdir()
    entry = {"model_name": "w", "route": "openai-transcriptions", "model_info": {"mode": "audio_transcription"}}
    entry["model_info"]["stream_only"] = True
    (root / "models" / "speech2text.yaml").write_text(json.dumps({"models": [entry]}), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"model 'w': field 'model_info\.stream_only': route .* cannot stream"):
        load_catalog(root)


@pytest.mark.parametrize("stream_only", ["false", "true"])
@pytest.mark.parametrize("marker", [b"BLOCK_ME", b"BLOCK_MIDSTREAM"])
def test_a_content_security_block_is_an_error_naming_the_risk_never_a_transcript(
    gateway: Gateway, stream_only: str, marker: bytes
) -> None:
    credentials = _own_model(gateway, stream_only=stream_only)
    with pytest.raises(InvokeBadRequestError) as caught:
        adapter("speech2text").invoke("qwen-omni", credentials, io.BytesIO(_saying(b"say " + marker)))
    message = str(caught.value)
    assert message.startswith("Model 'qwen-omni': AI Gateway content security blocked the transcript: ")
    assert "contentModeration/high" in message and "request id " in message
    assert "transcript of" not in message  # the part of the transcript sent before the block is not passed on


def test_gateway_errors_keep_their_class_and_words(gateway: Gateway) -> None:
    with pytest.raises(InvokeRateLimitError):
        adapter("speech2text").invoke(MODEL, gateway.credentials("/_fault/status-429"), io.BytesIO(silence_wav()))
    with pytest.raises(InvokeBadRequestError, match="The request parameter is invalid"):
        adapter("speech2text").invoke(MODEL, gateway.credentials("/_fault/dserror-400"), io.BytesIO(silence_wav()))


def test_a_transcript_too_large_for_one_message_is_a_bad_request(gateway: Gateway) -> None:
    size = 6 * MEGABYTE
    with pytest.raises(InvokeBadRequestError) as caught:
        adapter("speech2text").invoke(MODEL, gateway.credentials(f"/_fault/big-{size}"), io.BytesIO(silence_wav()))
    assert f"the transcript ({len(big_text(size)):,} characters)" in str(caught.value)


# --------------------------------------------------------------------------- answers without a transcript

PRIVATE = "words the user said"
EMPTY_ANSWERS = {
    "empty.json": {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
                   "note": PRIVATE},
    "null.json": {"choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                  "annotations": [{"type": "audio_info", "language": "zh", "emotion": "neutral"}]},
                  "finish_reason": "stop"}], "model": PRIVATE},
}  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("answers")
    for name, body in EMPTY_ANSWERS.items():
        (folder / name).write_text(json.dumps(body), encoding="utf-8")
    emulator = GatewayEmulator(consumers=[Consumer(name="a", api_key=TEST_KEY)], recorded_dir=folder)
    with serve(emulator) as base_url:
        yield Gateway(emulator, base_url)


@pytest.mark.parametrize("answer", EMPTY_ANSWERS)
def test_an_answer_without_text_is_unusable_and_not_quoted(recorded: Gateway, answer: str) -> None:
    credentials = recorded.credentials(f"/_recorded/{answer}")
    with pytest.raises(InvokeServerUnavailableError) as caught:
        adapter("speech2text").invoke(MODEL, credentials, io.BytesIO(silence_wav()))
    assert str(caught.value) == (
        "AI Gateway answer from /v1/chat/completions is unusable: "
        "the answer has no transcript (its message content is empty)"
    )
    assert PRIVATE not in str(caught.value)


def test_validation_passes_when_silence_brings_no_transcript(recorded: Gateway) -> None:
    # The check sends 0.1 s of silence: an ASR model that answers it with no text works all the same.
    adapter("speech2text").validate_credentials(MODEL, recorded.credentials("/_recorded/empty.json"))


# --------------------------------------------------------------------------- the form, and over stdio


def test_the_model_form_offers_the_route_for_speech_to_text() -> None:
    saved = dify_saves(forms()["model"], GATEWAY | {"route_preset": ROUTE}, "speech2text")
    model = customizable_model("qwen3-asr-flash", "speech2text", saved, default_catalog())
    assert (model.route.name, model.route.path, model.route.dialect) == (ROUTE, PATH, "openai-chat")


def test_over_stdio_the_daemon_gets_the_transcript(gateway: Gateway) -> None:
    audio = silence_wav(0.2)
    with PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        request = {"provider": "aliyun_ai_gateway", "model": MODEL, "credentials": gateway.credentials()}
        (answer,) = plugin.request("invoke_speech2text", request | {"file": audio}, timeout=30)
        assert answer == {"result": _transcript(audio)}
        with pytest.raises(PluginSessionError) as caught:
            plugin.request("invoke_speech2text", request | {"file": _saying(b"BLOCK_ME")}, timeout=30)
    assert caught.value.error_type == "InvokeBadRequestError"
    assert "content security blocked the transcript" in (caught.value.description or "")


def test_a_stream_past_the_kept_text_bound_is_cut() -> None:
    from adapters.dialects.openai.chat_transcription import DIALECT
    from adapters.gateway.limits import STREAM_TEXT_LIMIT

    piece = "x" * (STREAM_TEXT_LIMIT // 3 + 1)  # three events of it pass the bound, each within the event bound
    event = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}).encode() + b"\n\n"
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        for number in range(1, 5):
            sent.append(number)
            yield event

    request = httpx.Request("POST", "http://gw.example/v1/chat/completions")
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body(), request=request)
    with pytest.raises(InvokeBadRequestError, match=f"more than {STREAM_TEXT_LIMIT:,} characters of transcript"):
        DIALECT.parse_answer(provider="openai", model=MODEL, response=response)
    assert sent == [1, 2, 3] and response.is_closed
