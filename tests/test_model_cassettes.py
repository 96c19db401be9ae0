"""Embedding, rerank, speech-to-text and text-to-speech replayed from cassettes, one per dialect.

Like tests/test_llm_cassettes.py, the assertions hold for any gateway's answers: shapes, order,
scores as sent, bytes that are audio, not the emulator's exact values.
"""

from __future__ import annotations

import io

import pytest

from adapters.models.audio import silence_wav, sniff_audio_format
from tests.cassettes import LIVE_ENDPOINT, RECORDING, recorded
from tests.conftest import adapter

DOCS = ["The AI gateway routes model traffic.", "Bananas are yellow.", "Gateways authenticate consumers."]


def _emulator_credentials(request: pytest.FixtureRequest) -> dict[str, str] | None:
    if not RECORDING or LIVE_ENDPOINT:
        return None
    return request.getfixturevalue("gateway").credentials()


@pytest.mark.parametrize("model", ["text-embedding-v3", "text-embedding-v4"])
def test_embeddings(request, model: str) -> None:
    texts = ["first text", "second, longer text about gateways", "third"]
    with recorded(f"embedding/{model}", _emulator_credentials(request)) as credentials:
        result = adapter("text-embedding").invoke(model, credentials, texts)
    assert len(result.embeddings) == len(texts)
    assert len({len(v) for v in result.embeddings}) == 1 and len(result.embeddings[0]) > 1
    assert result.embeddings[0] != result.embeddings[1]
    assert result.usage.tokens > 0 and result.usage.total_price >= 0


@pytest.mark.parametrize("model", ["bge-reranker-v2-m3", "qwen3-rerank", "gte-rerank-v2"])
def test_rerank(request, model: str) -> None:
    with recorded(f"rerank/{model}", _emulator_credentials(request)) as credentials:
        result = adapter("rerank").invoke(model, credentials, "What does an AI gateway do?", DOCS, None, 2)
    assert len(result.docs) == 2
    assert [d.score for d in result.docs] == sorted((d.score for d in result.docs), reverse=True)
    assert all(d.text == DOCS[d.index] for d in result.docs)


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
