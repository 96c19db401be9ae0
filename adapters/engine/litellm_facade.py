"""The only module that imports LiteLLM: its translation behind a few typed, keyword-only functions.

The plugin uses LiteLLM's provider-level translation (the per-provider `*Config` classes that build
request bodies and parse answers and stream chunks) and sends the bytes itself through
adapters/gateway/transport.py. That keeps LiteLLM's knowledge of each API while skipping the
per-call and per-chunk machinery around `litellm.completion()` (logging threads, cost maps,
retries) that costs milliseconds per call and most of the CPU of a stream.

Those classes are LiteLLM internals with positional signatures, so every call to them is here, and
tests/test_litellm_contract.py pins each function below against fixed inputs and recorded real
answers: a LiteLLM upgrade is this file plus a red or green contract test (DEVELOPING.md, "Upgrading
LiteLLM"). Answers come back as the small dataclasses below, never as LiteLLM's own types.

LiteLLM is configured once: offline, quiet, no retries. Importing it takes 2-4 s, so the plugin
answers its first heartbeat before paying for it (main.py starts the import right after that
heartbeat, see `start_loading`); a request that arrives earlier imports it itself.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx

from adapters.cooperative import off_the_hub

# Set before LiteLLM is imported, and forced: the plugin must not fetch the remote cost map, load a
# .env file, download tokenizers or log prompts, whatever the environment around it says.
_PRIVATE_ENV = {
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "DEFAULT_MAX_RETRIES": "0",
}
# Removed before LiteLLM is imported: with CUSTOM_TIKTOKEN_CACHE_DIR set, LiteLLM creates that
# directory and points tiktoken at it instead of its bundled encodings, so tiktoken downloads
# cl100k_base there (and the import fails where nothing can be downloaded). Without it, LiteLLM
# sets TIKTOKEN_CACHE_DIR to the encodings it ships, whatever the environment said.
_IGNORED_ENV = ("CUSTOM_TIKTOKEN_CACHE_DIR",)
os.environ.update(_PRIVATE_ENV)
for _name in _IGNORED_ENV:
    os.environ.pop(_name, None)

_module: ModuleType | None = None


class _QuietLogging:
    """The logging object LiteLLM's transform_*_response methods expect; it records nothing."""

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        return None


_QUIET_LOGGING = _QuietLogging()


def _configure(module: ModuleType) -> ModuleType:
    module.suppress_debug_info = True
    module.turn_off_message_logging = True
    module.disable_streaming_logging = True
    module.disable_hf_tokenizer_download = True
    module.telemetry = False
    module.DEFAULT_MAX_RETRIES = 0
    module.callbacks = []
    # The pieces the adapters call, imported now so that cost is paid off the request path too.
    importlib.import_module("litellm.llms.openai.chat.gpt_transformation")
    importlib.import_module("litellm.llms.openai.completion.transformation")
    importlib.import_module("litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response")
    return module


def _import() -> ModuleType:
    # Performance (make bench, "spawn -> first answer"): the import builds ~440k long-lived objects
    # (some 2,500 pydantic model classes among them) and the cyclic GC, triggered by allocation
    # counts, re-scans them over and over while it runs; pausing it cuts the import from ~2.5 s to
    # ~2.0 s on the benchmark machine. Freezing what the import built then keeps those objects out
    # of every later collection: one full collection over them costs ~0.3 s, a stall for every
    # greenlet of the plugin. The few cycles already garbage at this point (~1,300 objects) stay
    # allocated; that is the whole cost.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _configure(importlib.import_module("litellm"))
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def litellm() -> ModuleType:
    """The configured litellm module, imported on first use if start_loading() has not done it yet."""
    global _module
    if _module is None:
        _module = _import()
    return _module


def start_loading(delay: float = 0.3) -> None:
    """Import LiteLLM in the background, `delay` seconds from now.

    Under the SDK's gevent hub an import cannot yield, so it runs in a greenlet that must start only
    once the first heartbeat has gone out (main.py calls this from that heartbeat, with no delay); a
    request that arrives earlier imports it itself.
    """
    try:
        import gevent
    except ImportError:  # outside the plugin runtime (tools, tests)
        threading.Timer(delay, litellm).start()
        return
    gevent.spawn_later(delay, litellm)


class NoTranslationError(LookupError):
    """LiteLLM has no translation of this kind for the route's provider."""


# Per stream chunk values are slotted but not frozen: a frozen dataclass's __init__ sets each field
# through object.__setattr__, ~1.5 us instead of ~0.5 us per object on the benchmark machine.
@dataclass(slots=True)
class ToolCallPart:
    """A tool call of a chat answer, or one fragment of one in a stream (what a fragment omits is None)."""

    index: int | None
    id: str | None
    name: str | None
    arguments: str | None


@dataclass(slots=True)
class ChatTurn:
    """The assistant's part of a chat answer, or of one stream chunk: its first choice, as LiteLLM reads it."""

    content: str | None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallPart, ...] = ()
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingAnswer:
    # (index, embedding) as the answer lists them: unchecked, a list of numbers or a base64 string.
    indexed: list[tuple[Any, Any]]
    tokens: int | None  # LiteLLM's count: 0 when the answer had no usage


def _engine() -> ModuleType:
    return litellm()


def _provider(name: str) -> Any:
    return _engine().LlmProviders(name)


def _tool_parts(calls: Any) -> tuple[ToolCallPart, ...]:
    parts = []
    for call in calls or ():
        function = call.function
        parts.append(
            ToolCallPart(
                index=getattr(call, "index", None),
                id=call.id,
                name=function.name if function is not None else None,
                arguments=function.arguments if function is not None else None,
            )
        )
    return tuple(parts)


def _turn(message: Any, finish_reason: str | None) -> ChatTurn:
    return ChatTurn(
        content=message.content,
        reasoning=getattr(message, "reasoning_content", None),
        tool_calls=_tool_parts(message.tool_calls),
        finish_reason=finish_reason,
    )


# ---------------------------------------------------------------------------------------------
# Chat and text completion


def chat_request_body(
    *, provider: str, model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The chat body for `provider`: OpenAI `params` (temperature, tools, stream, ...) mapped and applied."""
    config = _engine().ProviderConfigManager.get_provider_chat_config(model, _provider(provider))
    mapped = config.map_openai_params(dict(params), {}, model, drop_params=False)
    return config.transform_request(model, messages, mapped, {}, {})


def text_completion_request_body(*, model: str, prompt: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The /completions body: one prompt and the mapped OpenAI `params`."""
    mapped = _engine().OpenAITextCompletionConfig().map_openai_params(dict(params), {}, model, drop_params=False)
    return {"model": model, "prompt": prompt, **mapped}


def parse_chat_answer(*, data: dict[str, Any]) -> ChatTurn:
    """The first choice of a blocking chat answer (reasoning from `reasoning_content` or `reasoning`)."""
    if (turn := _lean_answer(data)) is not None:
        return turn
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,
    )

    response = convert_to_model_response_object(response_object=data, model_response_object=_engine().ModelResponse())
    choice = response.choices[0]
    return _turn(choice.message, choice.finish_reason)


_LEAN_FINISH = frozenset({"stop", "length"})


def _lean_answer(data: dict[str, Any]) -> ChatTurn | None:
    """The turn of a blocking answer whose first message is text alone, else None.

    Performance: LiteLLM builds and validates a pydantic ModelResponse for the answer (~0.1-0.2 ms of
    a blocking chat's ~1 ms budget). A message with nothing but its text (nulls beside it being no
    field), no `<think>` block in it (LiteLLM moves one into the reasoning) and a finish reason
    LiteLLM keeps as it is is read here; anything else goes through LiteLLM.
    tests/test_litellm_contract.py checks both read every recorded answer alike.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message, finish = choice.get("message"), choice.get("finish_reason")
    if not isinstance(message, dict) or finish not in _LEAN_FINISH:
        return None
    content = message.get("content")
    if type(content) is not str or "<think>" in content or "</think>" in content:
        return None
    if any(value is not None and key not in ("role", "content") for key, value in message.items()):
        return None
    return ChatTurn(content=content, finish_reason=finish)


def parse_text_completion_answer(*, data: dict[str, Any]) -> ChatTurn:
    """The first choice of a blocking /completions answer, its `text` as the content."""
    engine = _engine()
    response = engine.OpenAITextCompletionConfig().convert_to_chat_model_response_object(data, engine.ModelResponse())
    choice = response.choices[0]
    return _turn(choice.message, choice.finish_reason)


@functools.cache
def _chunk_parser() -> Any:
    from litellm.llms.openai.chat.gpt_transformation import OpenAIChatCompletionStreamingHandler

    # The handler keeps no state between chunks; one serves every stream.
    return OpenAIChatCompletionStreamingHandler(streaming_response=None, sync_stream=True).chunk_parser


def _argument_pieces(fragments: list[Any]) -> tuple[ToolCallPart, ...] | None:
    """The tool-call fragments of a delta when each only continues a call's arguments, else None.

    A continuation names its call by index alone: no id (or DashScope's `"id": ""`), no name.
    """
    parts = []
    for fragment in fragments:
        if not isinstance(fragment, dict) or not fragment.keys() <= _CONTINUATION_KEYS:
            return None
        index, function = fragment.get("index"), fragment.get("function")
        if type(index) is not int or fragment.get("id") or fragment.get("type") not in (None, "function"):
            return None
        if not isinstance(function, dict) or not function.keys() <= _ARGUMENT_KEYS or function.get("name"):
            return None
        arguments = function.get("arguments")
        if type(arguments) is not str:
            return None
        parts.append(ToolCallPart(index=index, id=fragment.get("id"), name=None, arguments=arguments))
    return tuple(parts) or None


_CONTINUATION_KEYS = frozenset({"index", "id", "type", "function"})
_ARGUMENT_KEYS = frozenset({"arguments", "name"})


def _lean_turn(data: dict[str, Any]) -> ChatTurn | None:
    """The turn of a chunk that carries pieces of the answer and nothing else, else None.

    Performance: nearly every chunk of a stream is a piece of answer text or reasoning, or of a
    tool call's arguments, and LiteLLM's chunk_parser builds and validates a pydantic
    ModelResponseStream for each (~15-20 us, the largest part of the plugin's own CPU per chunk).
    Such a chunk is read here instead. Real servers send fields that say "nothing" beside the piece
    (OpenAI and DashScope `"usage": null` and `"logprobs": null` on every chunk, DeepSeek
    `"reasoning_content": null` beside text, `"content": null` beside reasoning, `"refusal": null`):
    a null field is no field, and what sits outside the delta (fingerprints, obfuscation padding,
    vLLM's token ids, sla_metrics) is no part of a turn. Usage is not either: the dialect reads it
    from the event. Anything else (a finish reason, a tool call's start with its id and name,
    reasoning in both `reasoning_content` and `reasoning`, an unknown delta field) goes through
    LiteLLM. tests/test_litellm_contract.py checks both give the same turn on every recorded stream
    and on each kind of chunk.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None
    content = reasoning = None
    parts: tuple[ToolCallPart, ...] = ()
    for key, value in delta.items():
        if value is None or key == "role":
            continue
        if key == "content" and type(value) is str:
            content = value
        elif key in _REASONING_KEYS and type(value) is str and reasoning is None:
            reasoning = value  # LiteLLM reads `reasoning` as reasoning_content (both at once: LiteLLM)
        elif key == "tool_calls" and isinstance(value, list) and (pieces := _argument_pieces(value)) is not None:
            parts = pieces
        else:
            return None
    if parts:  # argument pieces beside text are rare enough for LiteLLM
        return None if content or reasoning else ChatTurn(content=content, tool_calls=parts)
    if content is None and reasoning is None:  # a role alone, or nothing
        return None
    return ChatTurn(content=content, reasoning=reasoning)


_REASONING_KEYS = frozenset({"reasoning_content", "reasoning"})


def parse_chat_chunk(*, data: dict[str, Any]) -> ChatTurn | None:
    """The first choice of one chat stream event, or None for an event without choices (usage only)."""
    if data.get("choices") == []:  # the usage chunk: LiteLLM reads no choice from it either
        return None
    if (turn := _lean_turn(data)) is not None:
        return turn
    chunk = _chunk_parser()(data)
    for choice in chunk.choices[:1]:
        return _turn(choice.delta, choice.finish_reason)
    return None


def parse_text_completion_chunk(*, data: dict[str, Any]) -> ChatTurn | None:
    """One /completions stream event read as a chat chunk (its `text` as the content)."""
    choices = [
        {"index": c.get("index", 0), "delta": {"content": c.get("text")}, "finish_reason": c.get("finish_reason")}
        for c in data.get("choices") or []
    ]
    chunk = _chunk_parser()({**data, "choices": choices})
    for choice in chunk.choices[:1]:
        return _turn(choice.delta, choice.finish_reason)
    return None


def count_tokens(*, model: str, messages: list[dict[str, Any]] | None = None, text: str = "") -> int:
    """Tokens of OpenAI-shaped `messages`, or of `text`, by LiteLLM's bundled tokenizer (never downloaded).

    Counted in one of gevent's real threads (adapters/cooperative.py): counting a 10 MB prompt takes
    ~0.4 s and the tokenizer's first load ~0.8 s, which on the hub would hold every other session and
    the heartbeat for as long (tests/test_hub_turns.py).
    """
    counter = _engine().token_counter
    if messages is not None:
        return int(off_the_hub(functools.partial(counter, model=model, messages=messages)))
    return int(off_the_hub(functools.partial(counter, model=model, text=text))) if text else 0


# ---------------------------------------------------------------------------------------------
# Embedding, rerank, transcription, speech


def _found(config: Any, what: str, provider: str) -> Any:
    """A ProviderConfigManager lookup's answer; None means LiteLLM has no such translation."""
    if config is None:
        raise NoTranslationError(f"LiteLLM has no {what} translation for provider {provider!r}")
    return config


def _embedding_config(provider: str, model: str) -> Any:
    manager = _engine().ProviderConfigManager
    return _found(manager.get_provider_embedding_config(model, _provider(provider)), "embedding", provider)


def embedding_request_body(
    *, provider: str, model: str, texts: Sequence[str], dimensions: int | None
) -> dict[str, Any]:
    """The embeddings body for `provider`; `dimensions` only when given."""
    config = _embedding_config(provider, model)
    wanted = {"dimensions": dimensions} if dimensions else {}
    params = config.map_openai_params(wanted, {}, model, drop_params=False)
    return config.transform_embedding_request(model, list(texts), params, {})


def parse_embedding_answer(*, provider: str, model: str, response: httpx.Response) -> EmbeddingAnswer:
    """The (index, embedding) pairs and token count of a 2xx embeddings answer."""
    parsed = _embedding_config(provider, model).transform_embedding_response(
        model, response, _engine().EmbeddingResponse(), _QUIET_LOGGING, None, {}, {}, {}
    )
    usage = parsed.usage
    tokens = (usage.prompt_tokens or usage.total_tokens) if usage is not None else None
    return EmbeddingAnswer([(item["index"], item["embedding"]) for item in parsed.data], tokens)


def _rerank_config(provider: str, model: str) -> Any:
    return _engine().ProviderConfigManager.get_provider_rerank_config(model, _provider(provider), None, [])


def rerank_request_body(
    *, provider: str, model: str, query: str, documents: Sequence[str], top_n: int | None
) -> dict[str, Any]:
    """The Cohere-style rerank body for `provider`; `top_n` None asks for every document."""
    config = _rerank_config(provider, model)
    params = config.map_cohere_rerank_params(
        non_default_params={},
        model=model,
        drop_params=False,
        query=query,
        documents=list(documents),
        top_n=top_n,
        return_documents=None,
    )
    return config.transform_rerank_request(model, params, {})


def parse_rerank_answer(*, provider: str, model: str, response: httpx.Response) -> list[tuple[Any, Any]]:
    """(index, relevance_score) pairs of a 2xx rerank answer, unchecked, in the answer's order."""
    parsed = _rerank_config(provider, model).transform_rerank_response(
        model, response, _engine().RerankResponse(), _QUIET_LOGGING
    )
    return [(r["index"], r["relevance_score"]) for r in parsed.results or []]


def _transcription_config(provider: str, model: str) -> Any:
    manager = _engine().ProviderConfigManager
    return _found(
        manager.get_provider_audio_transcription_config(model, _provider(provider)), "transcription", provider
    )


def transcription_form_fields(
    *, provider: str, model: str, upload: tuple[str, bytes, str], options: Mapping[str, str]
) -> dict[str, Any]:
    """The multipart form fields (all but the file) of a transcription request with OpenAI `options`."""
    config = _transcription_config(provider, model)
    params = config.map_openai_params(dict(options), {}, model, drop_params=False)
    fields = dict(config.transform_audio_transcription_request(model, upload, params, {}).data)
    fields.pop("file")
    return fields


def parse_transcription_answer(*, provider: str, model: str, response: httpx.Response) -> str:
    """The text of a 2xx transcription answer."""
    return _transcription_config(provider, model).transform_audio_transcription_response(response).text or ""


def speech_request_body(*, provider: str, model: str, text: str, voice: str) -> dict[str, Any]:
    """The JSON body LiteLLM's text-to-speech translation builds for `provider`."""
    manager = _engine().ProviderConfigManager
    config = _found(manager.get_provider_text_to_speech_config(model, _provider(provider)), "text-to-speech", provider)
    voice_field, params = config.map_openai_params(model, {}, voice=voice, drop_params=False)
    return config.transform_text_to_speech_request(model, text, voice_field, params, {}, {})["dict_body"]
