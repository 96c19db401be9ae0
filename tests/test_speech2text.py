"""The speech-to-text adapter against the gateway emulator: the exact audio bytes on the wire, and the text back.

The emulator's transcript names the uploaded file and the length and SHA-256 of the bytes it
received, so a test can tell that the upload carried exactly what Dify handed over.
"""

from __future__ import annotations

import hashlib
import io
import tempfile

# dify_plugin applies gevent's monkey-patching on import: before the emulator's server threads start.
import dify_plugin  # noqa: F401
import pytest
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
)

from adapters.models.audio import silence_wav, sniff_audio_format
from adapters.models.base import _catalog_entities
from adapters.models.speech2text.speech2text import AIGatewaySpeech2TextModel

PATH = "/v1/audio/transcriptions"
MODEL = "whisper-large-v3"
# The first bytes of each container the adapter recognises, padded to look like a clip.
SAMPLES = {
    "wav": (silence_wav(0.05), "audio/wav"),
    "flac": (b"fLaC\x00\x00\x00\x22" + bytes(200), "audio/flac"),
    "ogg": (b"OggS\x00\x02" + bytes(200), "audio/ogg"),
    "m4a": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(200), "audio/mp4"),
    "mp4": (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(200), "audio/mp4"),
    "webm": (
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm\x42\x87\x81\x04" + bytes(200),
        "audio/webm",
    ),
    "mp3": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(413), "audio/mpeg"),
}


@pytest.fixture
def transcriber() -> AIGatewaySpeech2TextModel:
    return AIGatewaySpeech2TextModel(list(_catalog_entities("speech2text")))


def _transcript(name: str, audio: bytes) -> str:
    return f"transcript of {name}: {len(audio)} bytes, sha256 {hashlib.sha256(audio).hexdigest()[:12]}"


def test_the_exact_bytes_dify_hands_over_are_uploaded(transcriber, gateway) -> None:
    audio = silence_wav(0.3)
    # The SDK writes Dify's audio to a NamedTemporaryFile and passes its open file object.
    with tempfile.NamedTemporaryFile(suffix=".mp3") as temp:
        temp.write(audio)
        temp.flush()
        temp.seek(0)
        text = transcriber.invoke(MODEL, gateway.credentials(), temp.file)
    assert text == _transcript("audio.wav", audio)
    received = gateway.emulator.received[-1]
    assert received.path == PATH
    form = received.multipart()
    assert form["file"].data == audio and form["file"].content_type == "audio/wav"
    # The catalog model is asked for json only: no language or prompt is configured, none is forced.
    assert {k: v for k, v in form.items() if k != "file"} == {
        "model": "openai/whisper-large-v3",
        "response_format": "json",
    }


@pytest.mark.parametrize("extension", SAMPLES)
def test_name_and_content_type_follow_the_bytes(transcriber, gateway, extension: str) -> None:
    audio, content_type = SAMPLES[extension]
    text = transcriber.invoke(MODEL, gateway.credentials(), io.BytesIO(audio))
    assert text == _transcript(f"audio.{extension}", audio)
    upload = gateway.emulator.received[-1].multipart()["file"]
    assert (upload.filename, upload.content_type, upload.data) == (f"audio.{extension}", content_type, audio)


def test_the_whole_file_is_sent_even_when_it_was_read_before(transcriber, gateway) -> None:
    audio = silence_wav(0.1)
    file = io.BytesIO(audio)
    file.read()
    assert transcriber.invoke(MODEL, gateway.credentials(), file) == _transcript("audio.wav", audio)


@pytest.mark.parametrize(
    "audio",
    [
        b"just some text, not audio at all",
        b"\xff\xf1\x50\x80" + bytes(100),  # AAC ADTS: sync bits like MP3, but not MP3
        b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + bytes(100),  # Matroska video, not WebM
        b"",
    ],
)
def test_unknown_audio_is_refused_before_any_request(transcriber, gateway, audio: bytes) -> None:
    with pytest.raises(InvokeBadRequestError, match=f"Model '{MODEL}'"):
        transcriber.invoke(MODEL, gateway.credentials(), io.BytesIO(audio))
    assert gateway.emulator.received == []


def test_a_file_over_the_upload_limit_is_refused(transcriber, gateway) -> None:
    audio = silence_wav(0.01) + bytes(1024 * 1024)
    credentials = gateway.credentials(file_upload_limit="1")
    with pytest.raises(InvokeBadRequestError, match="at most 1 MB"):
        transcriber.invoke("my-asr", credentials, io.BytesIO(audio))
    assert gateway.emulator.received == []


def test_a_model_added_by_a_catalog_name_sends_what_its_own_form_says(transcriber, gateway) -> None:
    # The catalog's whisper-large-v3 declares a language but no prompt; the user's form has both.
    credentials = gateway.credentials(language="zh", model_options="prompt=AI 网关")
    transcriber.invoke(MODEL, credentials, io.BytesIO(silence_wav()))
    form = gateway.emulator.received[-1].multipart()
    assert (form["language"], form["prompt"]) == ("zh", "AI 网关")
    transcriber.invoke(MODEL, gateway.credentials(), io.BytesIO(silence_wav()))  # the provider's credentials
    form = gateway.emulator.received[-1].multipart()
    assert "language" not in form and "prompt" not in form


def test_customizable_model_sends_language_and_prompt_only_when_configured(transcriber, gateway) -> None:
    transcriber.invoke("my-asr", gateway.credentials(), io.BytesIO(silence_wav()))
    form = gateway.emulator.received[-1].multipart()
    assert form["model"] == "my-asr" and "language" not in form and "prompt" not in form

    credentials = gateway.credentials(language="en", model_options="prompt=Higress, DashScope")
    transcriber.invoke("my-asr", credentials, io.BytesIO(silence_wav()))
    form = gateway.emulator.received[-1].multipart()
    assert (form["language"], form["prompt"]) == ("en", "Higress, DashScope")


def test_validate_credentials(transcriber, gateway) -> None:
    transcriber.validate_credentials(MODEL, gateway.credentials())
    clip = gateway.emulator.received[-1].multipart()["file"]
    assert sniff_audio_format(clip.data) is not None and len(clip.data) == len(silence_wav())
    with pytest.raises(CredentialsValidateFailedError, match=rf"^Model '{MODEL}': AI Gateway answered HTTP 401"):
        transcriber.validate_credentials(MODEL, gateway.credentials("/_fault/status-401"))
