"""What a dialect of each model type does, and what it gives back.

A dialect is one wire format: it builds the body a route expects and reads the route's answer.
It knows the wire and nothing of Dify's catalog: the model adapter decides what to ask for (which
options a model declares, whether to stream) and hands the dialect plain values; the dialect's
answers are the small dataclasses below. `provider` is the route's `litellm` provider, for the
dialects that build and read through LiteLLM's translation (adapters/engine/litellm_facade.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from dify_plugin.entities.model.message import PromptMessage, PromptMessageTool

from adapters.engine.litellm_facade import ChatTurn


class Dialect(ABC):
    model_type: ClassVar[str]  # the Dify model type, as routes.yaml writes it
    name: ClassVar[str]  # the `dialect` of a route preset in routes.yaml
    modes: ClassVar[frozenset[str]]  # the LiteLLM `model_info.mode` values of the models it can serve


# TokenCounts and ChatChunk are built per stream chunk: slotted, not frozen (see ChatTurn).
@dataclass(slots=True)
class TokenCounts:
    prompt: int | None
    completion: int | None
    cached: int | None = None  # of the prompt tokens, those the upstream served from its context cache


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    turn: ChatTurn
    model: str | None  # as the answer names it: Higress' content security answers as "from-security-guard"
    usage: TokenCounts
    system_fingerprint: str | None


@dataclass(slots=True)
class ChatChunk:
    turn: ChatTurn | None  # None for an event without choices (a usage-only event)
    model: str | None
    usage: TokenCounts | None  # only on the event that carries it


class ChatDialect(Dialect):
    model_type = "llm"  # modes: "chat" or "completion", by dialect

    @abstractmethod
    def request_body(
        self,
        *,
        provider: str,
        model: str,
        messages: Sequence[PromptMessage],
        params: Mapping[str, Any],
        tools: Sequence[PromptMessageTool],
        stream: bool,
    ) -> dict[str, Any]:
        """The body for `messages`, with OpenAI `params` (temperature, stop, response_format, ...)."""

    @abstractmethod
    def parse_answer(self, response: httpx.Response) -> ChatAnswer:
        """A 2xx blocking answer."""

    @abstractmethod
    def parse_chunk(self, data: dict[str, Any]) -> ChatChunk:
        """One event of a streamed answer (already read from the SSE)."""


@dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    vectors: list[list[float]]  # in input order
    tokens: int | None  # as the gateway counted them; None when it sent no usage


class EmbeddingDialect(Dialect):
    model_type = "text-embedding"
    modes = frozenset({"embedding"})

    @abstractmethod
    def request_body(
        self, *, provider: str, model: str, texts: Sequence[str], input_type: str | None, dimensions: int | None
    ) -> dict[str, Any]:
        """The body for one batch; `input_type` ("query"/"document") and `dimensions` only when given."""

    @abstractmethod
    def parse_answer(
        self, *, provider: str, model: str, response: httpx.Response, count: int, dimensions: int | None
    ) -> EmbeddingBatch:
        """The `count` vectors of a 2xx answer, each `dimensions` long when that was asked for."""


class RerankDialect(Dialect):
    model_type = "rerank"
    modes = frozenset({"rerank"})

    @abstractmethod
    def request_body(
        self, *, provider: str, model: str, query: str, documents: Sequence[str], top_n: int | None
    ) -> dict[str, Any]:
        """The body; `top_n` None asks for every document."""

    @abstractmethod
    def parse_answer(self, *, provider: str, model: str, response: httpx.Response, count: int) -> dict[int, float]:
        """Input index → score as the gateway sent it, for the documents it ranked."""


@dataclass(frozen=True, slots=True)
class Clip:
    """The audio to transcribe and what the model adapter asks for it."""

    upload: tuple[str, bytes, str]  # file name, bytes, content type
    language: str | None = None
    prompt: str | None = None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """What one transcription sends: multipart `form` fields beside the upload, or a `json` body
    (streamed when `stream`)."""

    form: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str | None  # None: the answer carried none (a chat answer's message content missing or empty)
    # What Higress' content security sent instead of (or after part of) the transcript, as it sent it.
    blocked: str | None = None


class TranscriptionDialect(Dialect):
    model_type = "speech2text"
    modes = frozenset({"audio_transcription"})
    # The wire can stream its answer (a model with model_info.stream_only needs one that can).
    can_stream: ClassVar[bool] = False

    @abstractmethod
    def request(self, *, provider: str, model: str, clip: Clip) -> TranscriptionRequest:
        """What to send for the clip; `clip.stream` only where `can_stream`."""

    @abstractmethod
    def parse_answer(self, *, provider: str, model: str, response: httpx.Response) -> Transcript:
        """The transcript of a 2xx answer (a stream is read here, to its end)."""


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Synthesized audio: the bytes, or where the gateway left them (fetched by adapters/gateway/download.py)."""

    data: bytes | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("SpeechAudio holds either the audio bytes or its URL")


class SpeechDialect(Dialect):
    model_type = "tts"
    modes = frozenset({"audio_speech"})
    # The one audio format the wire answers with whatever is asked (None: the one asked for).
    only_audio_type: ClassVar[str | None] = None

    @abstractmethod
    def request_body(self, *, provider: str, model: str, text: str, voice: str, audio_type: str) -> dict:
        """The body for one piece of text in `audio_type` (mp3, wav; a dialect with `only_audio_type` ignores it)."""

    @abstractmethod
    def parse_answer(self, response: httpx.Response) -> SpeechAudio:
        """The audio of a 2xx answer."""
