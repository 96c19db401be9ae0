"""The `model_info` schema of each model type: what the catalog may say about a model of that type.

One frozen dataclass per Dify model type, and every field is read by an adapter or the Dify schema.
Where a name comes from LiteLLM's `model_info` (`mode`, `max_output_tokens`, `supports_*` for
function calling, vision, PDF, audio and video input, response schema and reasoning, the
`*_cost_per_token` prices and `cache_read_input_token_cost`, `output_vector_size`) it means what LiteLLM's
model_prices_and_context_window.json `sample_spec` says. Every other name is the plugin's own:
Dify's where Dify has one (`context_size`, `max_chunks`, `file_upload_limit`, `voices`,
`word_limit`...), otherwise descriptive (`streams_tool_calls`, `stream_only`, `extra_params`,
`base64_audio_limit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Voice:
    mode: str
    name: str
    language: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LLMInfo:
    """A chat or completion model."""

    mode: str
    # Dify's context_size: the context window, prompt and answer together (LiteLLM's max_input_tokens
    # is the prompt's cap alone, so it is not used).
    context_size: int = 4096
    # The max_tokens rule's max and default; None keeps the rule's own.
    max_output_tokens: int | None = None
    supports_function_calling: bool = False
    supports_parallel_function_calling: bool = False
    supports_vision: bool = False
    supports_video_input: bool = False
    supports_audio_input: bool = False
    supports_pdf_input: bool = False
    supports_response_schema: bool = False
    supports_reasoning: bool = False
    # The upstream can stream an answer that calls tools; when false, calls with tools are sent
    # unstreamed and relayed as a stream.
    streams_tool_calls: bool = True
    # The upstream answers only streamed requests (DashScope's QwQ and open Qwen3 models reject others
    # with "This model only support stream mode"): blocking calls are streamed and collected.
    stream_only: bool = False
    # Non-standard parameter rules (parameters.yaml) offered to and sent for this model only.
    extra_params: tuple[str, ...] = ()
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    # What a prompt token served from the upstream's context cache costs (usage.prompt_tokens_details
    # .cached_tokens); None: the input price.
    cache_read_input_token_cost: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class TextEmbeddingInfo:
    mode: str
    # Dify's context_size: the most tokens one text may have.
    context_size: int = 512
    # Dify's max_chunks: texts per request.
    max_chunks: int = 1
    # The vector size asked for, one of `dimensions` (the sizes the model can return); the two go
    # together, and the size is sent only when both are given.
    output_vector_size: int | None = None
    dimensions: tuple[int, ...] = ()
    # The route takes a query/document switch (DashScope text_type, OpenAI-style input_type).
    supports_input_type: bool = False
    input_cost_per_token: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class RerankInfo:
    mode: str
    # Dify's context_size: the most tokens of the query or of one document.
    context_size: int = 4096
    # Documents per request; longer lists are split and their scores merged. None: no limit.
    max_documents: int | None = None
    input_cost_per_token: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Speech2TextInfo:
    mode: str
    # Dify's file_upload_limit, in MB.
    file_upload_limit: int = 25
    # Dify's supported_file_extensions; empty: any format the plugin recognises.
    supported_file_extensions: tuple[str, ...] = ()
    # The route takes a `language` / `prompt` field (sent only when the model says so).
    supports_language: bool = False
    supports_prompt: bool = False
    # The most MB the audio may take as base64, for a route that sends it inline in JSON (speech
    # through chat); refused before any request past it. None: no bound but file_upload_limit.
    base64_audio_limit: int | None = None
    # The upstream answers only streamed requests: the transcript is collected from the stream
    # (a route whose dialect can stream, like speech through chat).
    stream_only: bool = False


@dataclass(frozen=True, slots=True)
class TTSInfo:
    mode: str
    voices: tuple[Voice, ...] = ()
    # Dify's default_voice; None: the first voice.
    default_voice: str | None = None
    audio_type: str = "mp3"
    # Dify's word_limit: characters per synthesis request.
    word_limit: int = 500
    # Dify's max_workers: synthesis requests in flight for one text.
    max_workers: int = 1


type ModelInfo = LLMInfo | TextEmbeddingInfo | RerankInfo | Speech2TextInfo | TTSInfo

# The schema each Dify model type's `model_info` follows.
SCHEMAS: Mapping[str, type[ModelInfo]] = MappingProxyType(
    {
        "llm": LLMInfo,
        "text-embedding": TextEmbeddingInfo,
        "rerank": RerankInfo,
        "speech2text": Speech2TextInfo,
        "tts": TTSInfo,
    }
)


def field_names(schema: type[ModelInfo]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(schema))


def capabilities(schema: type[ModelInfo]) -> frozenset[str]:
    """The `supports_*` switches of a schema: a route lists those it can carry under `serves`."""
    return frozenset(name for name in field_names(schema) if name.startswith("supports_"))
