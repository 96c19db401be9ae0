"""Finds the catalog entry behind a Dify model name, or builds one from customizable-model credentials.

Everything downstream (schema, request building, pricing) works on a `CatalogModel`, so a model a
user adds by name in Dify follows exactly the same code path as one from provider_configs/.

Which of the two a request is for is told by the credentials (`is_model_form`). Dify invokes a model
of the provider's predefined list with the provider's credentials, and a model the user added by
name with that model's own credentials, also when the name is in the catalog too. Dify keeps of
each form only that form's fields, defaults filled in (api `ProviderCredentialSchemaValidator` and
`ModelCredentialSchemaValidator`), so a model's own credentials always hold a field only the model
form has (`route_preset` has a default; the forms of earlier versions had a defaulted field for
every type), and the provider's never do. A model added by name is built from its own credentials
only: the user's form always wins over a catalog entry of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from itertools import chain
from types import MappingProxyType
from typing import Any, Final

from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog.loader import RESPONSE_SCHEMA_PARAMETERS, Catalog, CatalogModel, Route, default_catalog, streams
from adapters.catalog.model_info import (
    LLMInfo,
    ModelInfo,
    RerankInfo,
    Speech2TextInfo,
    TextEmbeddingInfo,
    TTSInfo,
    Voice,
)
from adapters.credentials import converted, credential_error, packed_options, text, with_options
from adapters.dialects.kinds import SpeechDialect
from adapters.dialects.registry import dialect

_MILLION = Decimal(1_000_000)
# The model form's fields that shape the schema: provider.yaml `model_fields` (but endpoint_model_name,
# the name sent, which resolve_model reads) and the generated route preset.
MODEL_FORM_FIELDS_SHOWN: Final = (
    "route_preset", "mode", "context_size", "max_tokens_to_sample", "function_calling_type",
    "stream_function_calling", "vision_support", "structured_output_support", "agent_though_support",
    "language", "voices", "model_options",
)  # fmt: skip
# What `model_options` may hold for each model type. Most were form fields of their own in earlier
# versions, and their stored values still count where no option replaces them; cache_read_price and
# extra_params never were.
MODEL_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "llm": ("input_price", "output_price", "cache_read_price", "currency", "extra_params"),
        "text-embedding": (
            "context_size",
            "max_chunks",
            "dimensions",
            "supports_input_type",
            "input_price",
            "currency",
        ),
        "rerank": ("context_size", "input_price", "currency"),
        "speech2text": ("prompt", "file_upload_limit", "base64_audio_limit", "stream_only"),
        "tts": ("default_voice", "audio_type", "word_limit"),
    }
)
_OPTION_NAMES: Final = tuple(dict.fromkeys(chain.from_iterable(MODEL_OPTIONS.values())))
# A field of earlier forms that no option replaces (agent_though_support took it over): read if stored.
LEGACY_MODEL_FIELDS: Final = ("thinking_param",)
# Every field `customizable_model` reads. None holds a secret, so what is built from them can be cached by them.
MODEL_FORM_FIELDS: Final = tuple(dict.fromkeys((*MODEL_FORM_FIELDS_SHOWN, *_OPTION_NAMES, *LEGACY_MODEL_FIELDS)))
# The route preset meaning "the model type's usual route": the first in routes.yaml serving the mode.
DEFAULT_ROUTE: Final = "default"


def is_model_form(credentials: Mapping[str, Any]) -> bool:
    """Whether `credentials` are a customizable model's own (see the module docstring), not the provider's."""
    return any(text(credentials, name) for name in (*MODEL_FORM_FIELDS, "endpoint_model_name"))


def model_form(credentials: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """A model form's settings by field name, `model_options` unpacked, absent ones None.

    An option of another model type fails, naming the types it applies to: `model_options` is one
    field for every type, and an option that changes nothing for this one is a mistake to report.
    """
    options = packed_options(credentials, "model_options", _OPTION_NAMES)
    own = MODEL_OPTIONS.get(model_type, ())
    for name in options:
        if name not in own:
            owners = " and ".join(t for t, names in MODEL_OPTIONS.items() if name in names)
            raise credential_error(
                "model_options", f"{name!r} applies to {owners} models, not {model_type} (options: {', '.join(own)})."
            )
    shown = {name: credentials.get(name) for name in (*MODEL_FORM_FIELDS_SHOWN, *LEGACY_MODEL_FIELDS)}
    return {**shown, **with_options(credentials, options, own)}


def positive_int(form: Mapping[str, Any], name: str, default: int) -> int:
    value = converted(form, name, int, lambda n: n > 0, "must be a positive whole number")
    return default if value is None else value


def _price_per_token(form: Mapping[str, Any], name: str) -> Decimal | None:
    price = converted(form, name, Decimal, lambda p: p.is_finite() and p >= 0, "must be a non-negative number")
    return None if price is None else price / _MILLION


def _choice(form: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = text(form, name) or default
    if value not in allowed:
        raise credential_error(name, f"unknown value {value!r}; expected one of {', '.join(allowed)}.")
    return value


def _route(catalog: Catalog, model_type: str, mode: str | None, form: Mapping[str, Any]) -> Route:
    """The preset named by `route_preset`, else the type's first one serving `mode` (if given) in the form."""
    wanted = text(form, "route_preset")
    candidates = [
        r for r in catalog.routes_for(model_type) if r.customizable_label and (mode is None or mode in r.modes)
    ]
    for route in candidates:
        if wanted in ("", DEFAULT_ROUTE, route.name):
            return route
    names = ", ".join([DEFAULT_ROUTE, *(r.name for r in candidates)])
    raise credential_error("route_preset", f"unknown value {wanted!r} for {model_type}; expected one of {names}.")


# agent_though_support → the request field that switches thinking, for models that think on request.
_THINKING_SWITCHES: Final = {"supported": "enable_thinking", "supported_chat_template": "chat_template_enable_thinking"}


def _llm_info(form: Mapping[str, Any], route: Route, catalog: Catalog) -> LLMInfo:
    mode = route.modes[0]
    tools = _choice(form, "function_calling_type", ("tool_call", "function_call", "no_call"), "no_call")
    thinking = _choice(
        form, "agent_though_support", (*_THINKING_SWITCHES, "only_thinking_supported", "not_supported"), "not_supported"
    )
    switch = _THINKING_SWITCHES.get(thinking)
    if thinking == "supported":  # an earlier form chose the switch in a field of its own
        switch = _choice(form, "thinking_param", tuple(_THINKING_SWITCHES.values()), "enable_thinking")
    streaming = _choice(form, "stream_function_calling", ("supported", "not_supported", "stream_only"), "supported")
    chat = mode == "chat"
    input_cost = _price_per_token(form, "input_price")
    output_cost = _price_per_token(form, "output_price")
    cache_cost = _price_per_token(form, "cache_read_price")
    if cache_cost is not None and input_cost is None:
        raise credential_error(
            "model_options", "cache_read_price is used only with input_price, the price it discounts."
        )
    priced = input_cost is not None or output_cost is not None
    return LLMInfo(
        mode=mode,
        context_size=positive_int(form, "context_size", 4096),
        max_output_tokens=positive_int(form, "max_tokens_to_sample", 4096),
        supports_function_calling=chat and tools != "no_call",
        supports_parallel_function_calling=chat and tools != "no_call",
        supports_vision=chat and text(form, "vision_support") == "support",
        supports_response_schema=chat and text(form, "structured_output_support") == "supported",
        supports_reasoning=chat and thinking != "not_supported",
        streams_tool_calls=streaming != "not_supported",
        # Marked so, or thinking-only (QwQ and the like, which DashScope serves as streams only).
        stream_only=streaming == "stream_only" or (chat and thinking == "only_thinking_supported"),
        extra_params=((switch,) if chat and switch else ()) + (_extra_params(form, catalog) if chat else ()),
        input_cost_per_token=input_cost,
        output_cost_per_token=output_cost,
        cache_read_input_token_cost=cache_cost,
        currency=_choice(form, "currency", ("RMB", "USD"), "RMB") if priced else None,
    )


def _extra_params(form: Mapping[str, Any], catalog: Catalog) -> tuple[str, ...]:
    """The request options (parameters.yaml rules beyond the standard ones) a model added by name
    takes, as `extra_params` lists them: comma-separated names, e.g. enable_search, tool_choice."""
    names = tuple(dict.fromkeys(n.strip() for n in text(form, "extra_params").split(",") if n.strip()))
    chosen_elsewhere = {*_THINKING_SWITCHES.values(), *RESPONSE_SCHEMA_PARAMETERS}  # by their own fields
    standard = {n for names_of_mode in catalog.standard_parameters.values() for n in names_of_mode}
    offered = [n for n in catalog.parameters if n not in standard and n not in chosen_elsewhere]
    for name in names:
        if name not in offered:
            raise credential_error(
                "model_options", f"extra_params: unknown option {name[:40]!r}; options are {', '.join(offered)}."
            )
    return names


def _priced(form: Mapping[str, Any]) -> dict[str, Any]:
    """Input price and currency from the optional price options (embedding and rerank bill input only)."""
    cost = _price_per_token(form, "input_price")
    if cost is None:
        return {}
    return {"input_cost_per_token": cost, "currency": _choice(form, "currency", ("RMB", "USD"), "RMB")}


def _embedding_info(form: Mapping[str, Any], route: Route, catalog: Catalog) -> TextEmbeddingInfo:
    # max_chunks defaults to 10: DashScope's per-request cap for text-embedding-v3/v4, the most common
    # backend behind this gateway, and no higher than other OpenAI-compatible servers accept (OpenAI
    # 2048, TEI 32, vLLM unbounded); 1 would work everywhere but costs one request per text.
    size = positive_int(form, "dimensions", 1) if text(form, "dimensions") else None
    input_type = _choice(form, "supports_input_type", ("supported", "not_supported"), "not_supported")
    return TextEmbeddingInfo(
        mode="embedding",
        context_size=positive_int(form, "context_size", 8192),
        max_chunks=positive_int(form, "max_chunks", 10),
        output_vector_size=size,
        dimensions=(size,) if size else (),
        supports_input_type=input_type == "supported",
        **_priced(form),
    )


def _rerank_info(form: Mapping[str, Any], route: Route, catalog: Catalog) -> RerankInfo:
    return RerankInfo(mode="rerank", context_size=positive_int(form, "context_size", 4096), **_priced(form))


def _speech2text_info(form: Mapping[str, Any], route: Route, catalog: Catalog) -> Speech2TextInfo:
    # A configured language or prompt is the user's statement that the model takes it.
    stream_only = _choice(form, "stream_only", ("true", "false"), "false") == "true"
    if stream_only and not streams(route):
        raise credential_error("stream_only", f"route {route.name!r} cannot stream its answer.")
    return Speech2TextInfo(
        mode="audio_transcription",
        file_upload_limit=positive_int(form, "file_upload_limit", 25),
        supports_language=bool(text(form, "language")),
        supports_prompt=bool(text(form, "prompt")),
        base64_audio_limit=converted(
            form, "base64_audio_limit", int, lambda n: n > 0, "must be a positive whole number"
        ),
        stream_only=stream_only,
    )


# Dify's interface languages: a customizable model's voices are offered whatever language the app uses.
_VOICE_LANGUAGES = (
    "zh-Hans", "zh-Hant", "en-US", "ja-JP", "ko-KR", "fr-FR", "de-DE", "es-ES", "it-IT", "pt-BR", "ru-RU",
    "th-TH", "id-ID", "vi-VN", "uk-UA", "ro-RO", "pl-PL", "hi-IN", "tr-TR", "fa-IR", "sl-SI", "ar-TN",
)  # fmt: skip


def _voices(form: Mapping[str, Any], route: Route, catalog: Catalog) -> tuple[Voice, ...]:
    """The voices the form names (comma-separated ids), else the route's (Catalog.default_voices)."""
    names = list(dict.fromkeys(v.strip() for v in text(form, "voices").split(",") if v.strip()))
    voices = [Voice(mode=n, name=n) for n in names] or catalog.default_voices(route)
    if not voices:
        raise credential_error(
            "voices", f"is required on route {route.name!r}: the voice ids, comma-separated (e.g. alloy,echo)."
        )
    return tuple(Voice(mode=v.mode, name=v.name, language=_VOICE_LANGUAGES) for v in voices)


def _tts_info(form: Mapping[str, Any], route: Route, catalog: Catalog) -> TTSInfo:
    voices = _voices(form, route, catalog)
    modes = [v.mode for v in voices]
    default_voice = text(form, "default_voice") or modes[0]
    if default_voice not in modes:
        raise credential_error("default_voice", f"{default_voice!r} is not one of the voices ({', '.join(modes)}).")
    # A dialect with one audio format (DashScope qwen-tts: WAV) gets it; others the chosen one.
    only = dialect(SpeechDialect, route.dialect).only_audio_type
    audio_type = _choice(form, "audio_type", ("mp3", "wav"), only or "mp3")
    if only and audio_type != only:
        raise credential_error("audio_type", f"must be {only} for route {route.name!r}: it returns {only} audio only.")
    return TTSInfo(
        mode="audio_speech",
        voices=voices,
        default_voice=default_voice,
        audio_type=audio_type,
        word_limit=positive_int(form, "word_limit", 500),
    )


_INFO_BUILDERS: Mapping[str, Callable[[Mapping[str, Any], Route, Catalog], ModelInfo]] = {
    "llm": _llm_info,
    "text-embedding": _embedding_info,
    "rerank": _rerank_info,
    "speech2text": _speech2text_info,
    "tts": _tts_info,
}


def customizable_model(name: str, model_type: str, credentials: Mapping[str, Any], catalog: Catalog) -> CatalogModel:
    """A catalog entry for a model the user added by name, from its model credentials only."""
    builder = _INFO_BUILDERS.get(model_type)
    if builder is None:
        raise CredentialsValidateFailedError(f"Model type {model_type!r} is not served by this provider.")
    form = model_form(credentials, model_type)
    mode = _choice(form, "mode", ("chat", "completion"), "chat") if model_type == "llm" else None
    route = _route(catalog, model_type, mode, form)
    return CatalogModel(
        name=name,
        route=route,
        info=builder(form, route, catalog),
        gateway_model=name,
        label={"en_US": name},
    )


def resolve_model(
    model_type: str, name: str, credentials: Mapping[str, Any], catalog: Catalog | None = None
) -> CatalogModel:
    """The model a request is for, with the gateway model name it must send (never empty).

    With the provider's credentials a catalog name is its catalog entry; a model's own credentials
    (`is_model_form`), and any name the catalog lacks, describe a customizable model.
    `endpoint_model_name`, when filled in, replaces the name sent to the gateway.
    """
    catalog = catalog or default_catalog()
    listed = None if is_model_form(credentials) else catalog.get(model_type, name)
    model = listed or customizable_model(name, model_type, credentials, catalog)
    override = text(credentials, "endpoint_model_name")
    return model.with_gateway_model(override) if override else model
