"""Finds the catalog entry behind a Dify model name, or builds one from customizable-model credentials.

Everything downstream (schema, request building, pricing) works on a `CatalogModel`, so a model a
user adds by name in Dify follows exactly the same code path as one from provider_configs/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog.loader import Catalog, CatalogModel, Route, default_catalog
from adapters.catalog.model_info import (
    LLMInfo,
    ModelInfo,
    RerankInfo,
    Speech2TextInfo,
    TextEmbeddingInfo,
    TTSInfo,
    Voice,
)
from adapters.credentials import converted, credential_error, text
from adapters.dialects.kinds import SpeechDialect
from adapters.dialects.registry import dialect

_MILLION = Decimal(1_000_000)
# Every field `customizable_model` reads: the model form's own fields (provider.yaml `model_fields`)
# and the generated route preset. None holds a secret, so what is built from them can be cached by them.
MODEL_FORM_FIELDS = (
    "mode", "route_preset", "context_size", "max_tokens_to_sample", "function_calling_type",
    "stream_function_calling", "vision_support", "structured_output_support", "agent_though_support",
    "thinking_param", "input_price", "output_price", "currency", "max_chunks", "dimensions",
    "supports_input_type", "language", "prompt", "file_upload_limit", "voices", "default_voice",
    "audio_type", "word_limit",
)  # fmt: skip


def positive_int(credentials: Mapping[str, Any], name: str, default: int) -> int:
    value = converted(credentials, name, int, lambda n: n > 0, "must be a positive whole number")
    return default if value is None else value


def _price_per_token(credentials: Mapping[str, Any], name: str) -> Decimal | None:
    price = converted(credentials, name, Decimal, lambda p: p.is_finite() and p >= 0, "must be a non-negative number")
    return None if price is None else price / _MILLION


def _choice(credentials: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = text(credentials, name) or default
    if value not in allowed:
        raise credential_error(name, f"unknown value {value!r}; expected one of {', '.join(allowed)}.")
    return value


def _route(catalog: Catalog, model_type: str, mode: str | None, credentials: Mapping[str, Any]) -> Route:
    """The preset named by `route_preset`, else the first one of the type (serving `mode`, if given)."""
    wanted = text(credentials, "route_preset")
    candidates = [r for r in catalog.routes_for(model_type) if mode is None or mode in r.modes]
    for route in candidates:
        if not wanted or route.name == wanted:
            return route
    names = ", ".join(r.name for r in candidates) or "none"
    raise credential_error("route_preset", f"unknown value {wanted!r} for {model_type}; expected one of {names}.")


def _llm_info(credentials: Mapping[str, Any], route: Route) -> LLMInfo:
    mode = route.modes[0]
    tools = _choice(credentials, "function_calling_type", ("tool_call", "function_call", "no_call"), "no_call")
    thinking = _choice(
        credentials, "agent_though_support", ("supported", "only_thinking_supported", "not_supported"), "not_supported"
    )
    thinking_param = _choice(
        credentials, "thinking_param", ("enable_thinking", "chat_template_enable_thinking"), "enable_thinking"
    )
    chat = mode == "chat"
    input_cost = _price_per_token(credentials, "input_price")
    output_cost = _price_per_token(credentials, "output_price")
    priced = input_cost is not None or output_cost is not None
    return LLMInfo(
        mode=mode,
        context_size=positive_int(credentials, "context_size", 4096),
        max_output_tokens=positive_int(credentials, "max_tokens_to_sample", 4096),
        supports_function_calling=chat and tools != "no_call",
        supports_parallel_function_calling=chat and tools != "no_call",
        supports_vision=chat and text(credentials, "vision_support") == "support",
        supports_response_schema=chat and text(credentials, "structured_output_support") == "supported",
        supports_reasoning=chat and thinking != "not_supported",
        streams_tool_calls=text(credentials, "stream_function_calling") != "not_supported",
        # Thinking-only models (QwQ and the like) are served as streams only on DashScope.
        stream_only=chat and thinking == "only_thinking_supported",
        extra_params=(thinking_param,) if chat and thinking == "supported" else (),
        input_cost_per_token=input_cost,
        output_cost_per_token=output_cost,
        currency=_choice(credentials, "currency", ("RMB", "USD"), "RMB") if priced else None,
    )


def _priced(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """Input price and currency from the optional price fields (embedding and rerank bill input only)."""
    cost = _price_per_token(credentials, "input_price")
    if cost is None:
        return {}
    return {"input_cost_per_token": cost, "currency": _choice(credentials, "currency", ("RMB", "USD"), "RMB")}


def _embedding_info(credentials: Mapping[str, Any], route: Route) -> TextEmbeddingInfo:
    # max_chunks defaults to 10: DashScope's per-request cap for text-embedding-v3/v4, the most common
    # backend behind this gateway, and no higher than other OpenAI-compatible servers accept (OpenAI
    # 2048, TEI 32, vLLM unbounded); 1 would work everywhere but costs one request per text.
    size = positive_int(credentials, "dimensions", 1) if text(credentials, "dimensions") else None
    input_type = _choice(credentials, "supports_input_type", ("supported", "not_supported"), "not_supported")
    return TextEmbeddingInfo(
        mode="embedding",
        context_size=positive_int(credentials, "context_size", 8192),
        max_chunks=positive_int(credentials, "max_chunks", 10),
        output_vector_size=size,
        dimensions=(size,) if size else (),
        supports_input_type=input_type == "supported",
        **_priced(credentials),
    )


def _rerank_info(credentials: Mapping[str, Any], route: Route) -> RerankInfo:
    return RerankInfo(
        mode="rerank", context_size=positive_int(credentials, "context_size", 4096), **_priced(credentials)
    )


def _speech2text_info(credentials: Mapping[str, Any], route: Route) -> Speech2TextInfo:
    # A configured language or prompt is the user's statement that the model takes it.
    return Speech2TextInfo(
        mode="audio_transcription",
        file_upload_limit=positive_int(credentials, "file_upload_limit", 25),
        supports_language=bool(text(credentials, "language")),
        supports_prompt=bool(text(credentials, "prompt")),
    )


# Dify's interface languages: a voice typed in by name is offered whatever language the app uses.
_VOICE_LANGUAGES = (
    "zh-Hans", "zh-Hant", "en-US", "ja-JP", "ko-KR", "fr-FR", "de-DE", "es-ES", "it-IT", "pt-BR", "ru-RU",
    "th-TH", "id-ID", "vi-VN", "uk-UA", "ro-RO", "pl-PL", "hi-IN", "tr-TR", "fa-IR", "sl-SI", "ar-TN",
)  # fmt: skip


def _tts_info(credentials: Mapping[str, Any], route: Route) -> TTSInfo:
    names = list(dict.fromkeys(v.strip() for v in text(credentials, "voices").split(",") if v.strip()))
    if not names:
        raise credential_error(
            "voices",
            "is required for text-to-speech models: the voice ids, comma-separated (e.g. alloy,echo or Cherry,Ethan).",
        )
    default_voice = text(credentials, "default_voice") or names[0]
    if default_voice not in names:
        raise credential_error("default_voice", f"{default_voice!r} is not one of the voices ({', '.join(names)}).")
    # A dialect with one audio format (DashScope qwen-tts: WAV) gets it; others the chosen one.
    only = dialect(SpeechDialect, route.dialect).only_audio_type
    audio_type = _choice(credentials, "audio_type", ("mp3", "wav"), only or "mp3")
    if only and audio_type != only:
        raise credential_error("audio_type", f"must be {only} for route {route.name!r}: it returns {only} audio only.")
    return TTSInfo(
        mode="audio_speech",
        voices=tuple(Voice(mode=n, name=n, language=_VOICE_LANGUAGES) for n in names),
        default_voice=default_voice,
        audio_type=audio_type,
        word_limit=positive_int(credentials, "word_limit", 500),
    )


_INFO_BUILDERS: Mapping[str, Callable[[Mapping[str, Any], Route], ModelInfo]] = {
    "llm": _llm_info,
    "text-embedding": _embedding_info,
    "rerank": _rerank_info,
    "speech2text": _speech2text_info,
    "tts": _tts_info,
}


def customizable_model(name: str, model_type: str, credentials: Mapping[str, Any], catalog: Catalog) -> CatalogModel:
    """A catalog entry for a model the user added by name, from its model credentials."""
    builder = _INFO_BUILDERS.get(model_type)
    if builder is None:
        raise CredentialsValidateFailedError(f"Model type {model_type!r} is not served by this provider.")
    mode = _choice(credentials, "mode", ("chat", "completion"), "chat") if model_type == "llm" else None
    route = _route(catalog, model_type, mode, credentials)
    return CatalogModel(
        name=name,
        route=route,
        info=builder(credentials, route),
        gateway_model=name,
        label={"en_US": name},
    )


def resolve_model(
    model_type: str, name: str, credentials: Mapping[str, Any], catalog: Catalog | None = None
) -> CatalogModel:
    """The model a request is for, with the gateway model name it must send (never empty).

    A catalog model keeps its catalog entry; any other name is a customizable model described by its
    credentials. `endpoint_model_name`, when filled in, replaces the name sent to the gateway.
    """
    catalog = catalog or default_catalog()
    model = catalog.get(model_type, name) or customizable_model(name, model_type, credentials, catalog)
    override = text(credentials, "endpoint_model_name")
    return model.with_gateway_model(override) if override else model
