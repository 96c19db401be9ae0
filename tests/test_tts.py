"""The text-to-speech adapter against the gateway emulator: the audio Dify receives, and what the gateway receives.

The emulator's audio carries the input text (after a format header), so a test can check that
every piece of a long text was spoken, in order, and that nothing was lost on the way.
"""

from __future__ import annotations

import io
import re
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# dify_plugin applies gevent's monkey-patching on import: before the emulator's server threads start.
import dify_plugin  # noqa: F401
import pytest
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeServerUnavailableError,
)

from adapters.models.audio import DAEMON_CHUNK
from adapters.models.base import _catalog_entities
from adapters.models.tts.held_audio import AbandonedError, HeldAudio
from adapters.models.tts.tts import AIGatewayText2SpeechModel
from tests.emulator import Request, Response, make_wav, serve
from tests.emulator.audio import encode_audio

SPEECH_PATH = "/v1/audio/speech"
QWEN_PATH = "/api/v1/services/aigc/multimodal-generation/generation"


@pytest.fixture
def speaker() -> AIGatewayText2SpeechModel:
    return AIGatewayText2SpeechModel(list(_catalog_entities("tts")))


def _speak(speaker, credentials, text: str, voice: str = "", model: str = "tts-1") -> list[bytes]:
    return list(speaker.invoke(model, "tenant", credentials, text, voice))


def _posts(gateway) -> list[dict]:
    return [r.json() for r in gateway.emulator.received if r.method == "POST"]


def test_openai_speech_returns_the_audio_bytes(speaker, gateway) -> None:
    chunks = _speak(speaker, gateway.credentials(), "Hello from the gateway.", "nova")
    assert b"".join(chunks) == encode_audio("Hello from the gateway.", "mp3")[1]
    received = gateway.emulator.received[-1]
    assert received.path == SPEECH_PATH
    assert received.json() == {
        "model": "tts-1",
        "input": "Hello from the gateway.",
        "voice": "nova",
        "response_format": "mp3",
    }
    assert speaker.get_tts_model_mime_type("tts-1", gateway.credentials()) == "audio/mpeg"


@pytest.mark.parametrize("voice", ["", "no-such-voice"])
def test_an_empty_or_unknown_voice_becomes_the_default_voice(speaker, gateway, voice: str) -> None:
    _speak(speaker, gateway.credentials(), "Hi.", voice)
    assert gateway.last_json()["voice"] == "alloy"


def test_qwen_tts_downloads_the_audio_from_the_gateway_with_its_auth(speaker, gateway) -> None:
    chunks = _speak(speaker, gateway.credentials(), "你好，网关。", "Ethan", model="qwen-tts")
    assert b"".join(chunks) == make_wav("你好，网关。".encode())
    post, download = gateway.emulator.received
    assert post.path == QWEN_PATH
    assert post.json() == {"model": "qwen-tts", "input": {"text": "你好，网关。", "voice": "Ethan"}}
    # The audio URL is on the gateway's own origin, so the consumer's credentials go with it.
    assert download.method == "GET" and download.path.startswith("/_files/")
    assert download.headers["authorization"] == "Bearer sk-test-a"
    assert speaker.get_tts_model_mime_type("qwen-tts", gateway.credentials()) == "audio/wav"


@dataclass
class ForeignAudio:
    """The emulator behind a front that moves qwen-tts audio URLs to another origin (same server).

    `localhost` and `127.0.0.1` are different origins to the client, so the download must go
    without the gateway's credentials. A `?Signature=` query stands for a pre-signed URL's secret.
    """

    gateway: Any
    base_url: str = ""
    missing_file: bool = False  # point the URL at a file that does not exist

    def __call__(self, request: Request) -> Response:
        response = self.gateway.emulator(request)
        if request.path.endswith(QWEN_PATH) and response.status == 200:
            body = re.sub(rb'"url":"http://127\.0\.0\.1:(\d+)', rb'"url":"http://localhost:\1', response.body)
            if self.missing_file:
                body = re.sub(rb"/_files/[0-9a-f]+\.wav", b"/_files/00000000deadbeef.wav", body)
            response.body = body.replace(b'.wav"', b'.wav?Signature=s3cr3t"')
        return response

    def credentials(self) -> dict[str, str]:
        return {"endpoint_url": f"{self.base_url}/v1", "api_key": "sk-test-a"}


@pytest.fixture
def foreign_audio(gateway, monkeypatch) -> Iterator[ForeignAudio]:
    monkeypatch.setenv("AIGW_DOWNLOAD_HOSTS", "localhost")  # a loopback name is fetched only when listed
    front = ForeignAudio(gateway)
    with serve(front) as base_url:
        front.base_url = base_url
        yield front


def test_audio_on_another_origin_is_fetched_without_gateway_credentials(speaker, foreign_audio) -> None:
    chunks = _speak(speaker, foreign_audio.credentials(), "Hello.", model="qwen-tts")
    assert b"".join(chunks) == make_wav(b"Hello.")
    post, download = foreign_audio.gateway.emulator.received
    assert post.headers["authorization"] == "Bearer sk-test-a"
    assert download.query == "Signature=s3cr3t"
    assert "authorization" not in download.headers


def test_a_failed_foreign_download_names_the_host_but_not_the_signature(speaker, foreign_audio) -> None:
    foreign_audio.missing_file = True
    with pytest.raises(InvokeServerUnavailableError, match="downloading the audio from http://localhost") as caught:
        _speak(speaker, foreign_audio.credentials(), "Hello.", model="qwen-tts")
    assert "s3cr3t" not in str(caught.value) and "HTTP 404" in str(caught.value)


def test_long_text_is_spoken_in_order_in_pieces_of_at_most_word_limit(speaker, gateway) -> None:
    # tts-1: word_limit 4096, max_workers 5, so the pieces are synthesized concurrently.
    text = " ".join(f"Sentence number {i} is about the gateway and its routes." for i in range(250))
    audio = b"".join(_speak(speaker, gateway.credentials(), text))
    pieces = sorted((body["input"] for body in _posts(gateway)), key=text.index)
    assert len(pieces) > 2 and all(len(p) <= 4096 and p.endswith(".") for p in pieces)
    assert " ".join(pieces) == text
    assert audio == b"".join(encode_audio(p, "mp3")[1] for p in pieces)


def test_wav_pieces_are_sent_as_one_wav_of_unknown_length(speaker, gateway) -> None:
    """The first piece's header says "length unknown" (0xFFFFFFFF, as streaming writers put it), the
    pieces after it are frames only: the concatenation Dify plays or saves is one WAV file."""
    credentials = gateway.credentials(route_preset="dashscope-tts", voices="Cherry", word_limit="20")
    text = "First one here. Then a second. And a third!"
    audio = b"".join(_speak(speaker, credentials, text, model="my-qwen-tts"))
    pieces = [body["input"]["text"] for body in _posts(gateway)]
    assert pieces == ["First one here.", "Then a second.", "And a third!"]
    assert audio[4:8] == audio[40:44] == b"\xff\xff\xff\xff"
    first = make_wav(pieces[0].encode())
    with wave.open(io.BytesIO(audio), "rb") as joined, wave.open(io.BytesIO(first), "rb") as piece:
        assert joined.getparams()[:3] == piece.getparams()[:3]  # channels, sample width, rate
        frames = joined.readframes(10**9)  # read to the end, as a player does with an unknown length
    assert frames == b"".join(make_wav(p.encode())[44:] for p in pieces)


def test_the_first_audio_leaves_before_the_last_piece_is_synthesized(speaker, gateway) -> None:
    """60 pieces, 5 workers: when the first chunk reaches Dify at most 6 pieces have been asked for,
    so memory holds a few pieces whatever the text's length."""
    text = " ".join(f"Sentence {i} is about the gateway." for i in range(60))
    credentials = gateway.credentials(voices="alloy", word_limit="40")
    chunks = iter(speaker.invoke("big-tts", "tenant", credentials, text, "alloy"))
    next(chunks)
    asked_first = len(_posts(gateway))
    rest = list(chunks)
    assert asked_first <= 6 < len(_posts(gateway)) == 60
    assert len(rest) == 59


def test_audio_reaches_dify_in_chunks_of_at_most_one_mebibyte(speaker, gateway) -> None:
    text = "x" * (DAEMON_CHUNK + DAEMON_CHUNK // 2)
    credentials = gateway.credentials(voices="alloy", word_limit=str(len(text)))
    chunks = _speak(speaker, credentials, text, model="big-tts")
    assert [len(c) for c in chunks[:-1]] == [DAEMON_CHUNK] * (len(chunks) - 1) and len(chunks) == 2
    assert b"".join(chunks) == encode_audio(text, "mp3")[1]


def test_customizable_voices_and_default(speaker, gateway) -> None:
    credentials = gateway.credentials(voices="v1, v2 ,v3", default_voice="v2", audio_type="wav")
    _speak(speaker, credentials, "Hi.", "", model="my-tts")
    assert gateway.last_json() == {"model": "my-tts", "input": "Hi.", "voice": "v2", "response_format": "wav"}
    _speak(speaker, credentials, "Hi.", "v3", model="my-tts")
    assert gateway.last_json()["voice"] == "v3"
    voices = speaker.get_tts_model_voices("my-tts", credentials, "ja-JP")
    assert voices == [{"name": v, "value": v} for v in ("v1", "v2", "v3")]


def test_catalog_voices_follow_the_language(speaker, gateway) -> None:
    assert len(speaker.get_tts_model_voices("tts-1", gateway.credentials(), "en-US")) == 6
    assert speaker.get_tts_model_voices("tts-1", gateway.credentials(), "zh-Hans") == []
    assert {"name": "Cherry 芊悦", "value": "Cherry"} in speaker.get_tts_model_voices("qwen3-tts-flash", {"x": "y"})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"voices": "a,b", "default_voice": "c"}, "not one of the voices"),
        ({"voices": "Cherry", "route_preset": "dashscope-tts", "audio_type": "mp3"}, "must be wav"),
    ],
)
def test_customizable_credentials_are_checked(speaker, fields, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=problem):
        speaker.get_customizable_model_schema("my-tts", {"endpoint_url": "http://gw/v1", **fields})


def test_empty_text_is_refused_before_any_request(speaker, gateway) -> None:
    with pytest.raises(InvokeBadRequestError, match=r"'tts-1'.*no text"):
        _speak(speaker, gateway.credentials(), " \n ")
    assert gateway.emulator.received == []


@pytest.mark.parametrize("model", ["tts-1", "qwen-tts"])
def test_validate_credentials(speaker, gateway, model: str) -> None:
    speaker.validate_credentials(model, gateway.credentials())
    listing, *calls = gateway.emulator.received  # the model list first: this gateway has none
    assert listing.path == "/v1/models" and listing.status == 404
    assert calls and all(r.status == 200 for r in calls)
    with pytest.raises(CredentialsValidateFailedError, match=rf"^Model '{model}': AI Gateway answered HTTP 503"):
        speaker.validate_credentials(model, gateway.credentials("/_fault/status-503"))


def test_a_piece_ahead_waits_for_room_and_the_next_piece_never_does() -> None:
    held = HeldAudio(limit=10)
    # The piece being waited for passes the limit rather than stall the speech.
    head = threading.Thread(target=lambda: [held.hold_for(0)(8) for _ in range(2)], daemon=True)
    head.start()
    head.join(5)
    assert not head.is_alive()
    waiting = threading.Thread(target=held.hold_for(1), args=(5,), daemon=True)
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and held.held == 16
    held.sent(0)
    waiting.join(5)
    assert not waiting.is_alive() and held.held == 5


def test_a_piece_waiting_for_room_gives_up_when_the_speech_ends() -> None:
    held = HeldAudio(limit=10)
    held.hold_for(0)(10)
    outcome: list[BaseException] = []

    def hold_ahead() -> None:
        try:
            held.hold_for(1)(1)
        except AbandonedError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=hold_ahead, daemon=True)
    waiting.start()
    waiting.join(0.2)
    held.end()
    waiting.join(5)
    assert not waiting.is_alive() and len(outcome) == 1
