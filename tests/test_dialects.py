"""The dialect registry: every file in adapters/dialects/<provider>/ is one wire format, found by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.catalog.loader import default_catalog
from adapters.dialects import registry
from adapters.dialects.kinds import ChatDialect, EmbeddingDialect, RerankDialect, SpeechDialect, TranscriptionDialect

DIALECTS_DIR = Path(registry.__file__).parent


def test_each_provider_file_is_one_dialect_and_every_route_names_one() -> None:
    files = sorted(p for p in DIALECTS_DIR.glob("*/*.py") if p.name != "__init__.py")
    found = {t: set(registry.dialect_modes(t)) for t in ("llm", "text-embedding", "rerank", "speech2text", "tts")}
    assert sum(len(names) for names in found.values()) == len(files)
    assert found == {
        "llm": {"openai", "openai-completion"},
        "text-embedding": {"openai", "dashscope"},
        "rerank": {"cohere", "dashscope", "dashscope-compatible"},
        "speech2text": {"openai", "openai-chat"},
        "tts": {"openai", "dashscope"},
    }
    for route in default_catalog().routes.values():
        assert route.dialect in found[route.model_type]


@pytest.mark.parametrize(
    ("kind", "name", "module"),
    [
        (ChatDialect, "openai", "openai.chat"),
        (ChatDialect, "openai-completion", "openai.completion"),
        (EmbeddingDialect, "openai", "openai.embedding"),
        (EmbeddingDialect, "dashscope", "dashscope.embedding"),
        (RerankDialect, "cohere", "cohere.rerank"),
        (RerankDialect, "dashscope-compatible", "dashscope_compatible.rerank"),
        (RerankDialect, "dashscope", "dashscope.rerank"),
        (TranscriptionDialect, "openai", "openai.transcription"),
        (TranscriptionDialect, "openai-chat", "openai.chat_transcription"),
        (SpeechDialect, "openai", "openai.speech"),
        (SpeechDialect, "dashscope", "dashscope.speech"),
    ],
)
def test_a_dialect_is_found_by_kind_and_name_in_its_own_file(kind: type, name: str, module: str) -> None:
    found = registry.dialect(kind, name)
    assert isinstance(found, kind) and found.name == name
    assert type(found).__module__ == f"adapters.dialects.{module}"


def test_an_unknown_dialect_names_the_known_ones() -> None:
    with pytest.raises(
        LookupError, match=r"no rerank dialect 'openai' \(known: \['cohere', 'dashscope', 'dashscope-compatible'\]\)"
    ):
        registry.dialect(RerankDialect, "openai")
