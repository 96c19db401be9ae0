"""Gateway conversations replayed from cassettes where no recorded real answer covers them.

Recorded answers of real servers (../shared/real_traces) are the test basis for chat, embeddings,
rerank and transcription answers (tests/test_real_traces.py); the cassettes left here cover what
those recordings do not: Higress key-auth rejecting a consumer, DashScope-native embeddings, the
multipart upload of a transcription matched byte for byte, and both speech dialects. The
assertions hold for any gateway's answers (re-record with AIGW_RECORD=1, DEVELOPING.md), not only the
emulator's.
"""

from __future__ import annotations

import io

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeAuthorizationError

from adapters.models.audio import silence_wav, sniff_audio_format
from tests.cassettes import LIVE_ENDPOINT, RECORDING, recorded
from tests.conftest import adapter


def _emulator_credentials(request: pytest.FixtureRequest) -> dict[str, str] | None:
    if not RECORDING or LIVE_ENDPOINT:
        return None
    return request.getfixturevalue("gateway").credentials()


def test_rejected_key(request) -> None:
    with (
        recorded("llm/rejected_key", _emulator_credentials(request)) as credentials,
        pytest.raises(InvokeAuthorizationError, match=r"Unauthorized consumer|401|403"),
    ):
        list(
            adapter("llm").invoke(
                "qwen-plus",
                {**credentials, "api_key": "sk-not-a-consumer"},
                [UserPromptMessage(content="hi")],
                {"max_tokens": 200},
                stream=False,
            )
        )


def test_dashscope_native_embeddings(request) -> None:
    texts = ["first text", "second, longer text about gateways", "third"]
    with recorded("embedding/text-embedding-v4", _emulator_credentials(request)) as credentials:
        result = adapter("text-embedding").invoke("text-embedding-v4", credentials, texts)
    assert len(result.embeddings) == len(texts)
    assert len({len(v) for v in result.embeddings}) == 1 and len(result.embeddings[0]) > 1
    assert result.embeddings[0] != result.embeddings[1]
    assert result.usage.tokens > 0 and result.usage.total_price >= 0


def test_transcription(request) -> None:
    with recorded("speech2text/whisper-large-v3", _emulator_credentials(request)) as credentials:
        text = adapter("speech2text").invoke("whisper-large-v3", credentials, io.BytesIO(silence_wav(0.5)))
    assert isinstance(text, str)


@pytest.mark.parametrize(("model", "voice"), [("tts-1", "alloy"), ("qwen-tts", "Cherry")])
def test_speech(request, model: str, voice: str) -> None:
    with recorded(f"tts/{model}", _emulator_credentials(request)) as credentials:
        chunks = list(adapter("tts").invoke(model, "tenant", credentials, "Hello from the gateway.", voice))
    audio = b"".join(chunks)
    assert chunks and all(len(c) <= 1024 * 1024 for c in chunks)
    assert sniff_audio_format(audio[:64]) is not None
