"""Translates a catalog model into the model schema Dify reads (features, properties, rules, pricing).

Dify lists predefined models from static YAML inside the package and asks the running plugin for
each model's schema. Both come from `model_document`: the running plugin builds its entities with
it, and the generator (adapters/catalog/generator.py, a build tool) writes the YAML with it, so the
two cannot drift.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dify_plugin.entities.model import AIModelEntity

from adapters.catalog.loader import Catalog, CatalogModel
from adapters.catalog.model_info import LLMInfo, ModelInfo, RerankInfo, Speech2TextInfo, TextEmbeddingInfo, TTSInfo
from adapters.message_size import texts_per_result

_PER_MILLION = Decimal("0.000001")

# model_info capability → Dify model feature.
_FEATURES = (
    ("supports_function_calling", "tool-call"),
    ("supports_parallel_function_calling", "multi-tool-call"),
    ("supports_function_calling", "stream-tool-call"),
    ("supports_reasoning", "agent-thought"),
    ("supports_vision", "vision"),
    ("supports_pdf_input", "document"),
    ("supports_video_input", "video"),
    ("supports_audio_input", "audio"),
    ("supports_response_schema", "structured-output"),
)


def decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _parameter_rules(model: CatalogModel, catalog: Catalog) -> list[dict[str, Any]]:
    rules = []
    for spec in catalog.parameters_for(model):
        rule = dict(spec.rule)
        if spec.name == "max_tokens" and isinstance(model.info, LLMInfo) and model.info.max_output_tokens:
            rule.update(min=1, max=model.info.max_output_tokens, default=model.info.max_output_tokens)
        rules.append(rule)
    return rules


def features(info: ModelInfo) -> list[str]:
    """Dify's model features for what an LLM's model_info says it supports (other types have none)."""
    if not isinstance(info, LLMInfo):
        return []
    return [name for key, name in _FEATURES if getattr(info, key)]


def pricing(info: ModelInfo) -> dict[str, str] | None:
    """Dify's pricing per million tokens (LLMs, text embedding and rerank are billed per token)."""
    if not isinstance(info, LLMInfo | TextEmbeddingInfo | RerankInfo) or info.input_cost_per_token is None:
        return None
    pricing = {"input": decimal_text(info.input_cost_per_token * 1_000_000), "unit": str(_PER_MILLION)}
    if isinstance(info, LLMInfo) and info.output_cost_per_token is not None:
        pricing["output"] = decimal_text(info.output_cost_per_token * 1_000_000)
    return {**pricing, "currency": str(info.currency)}


def max_chunks(info: TextEmbeddingInfo) -> int:
    """Texts per call Dify is told: the model's max_chunks, lowered so the vectors of one call fit in
    one message to the plugin daemon (adapters/message_size.py) at the vector size asked for."""
    return min(info.max_chunks, texts_per_result(info.output_vector_size))


def model_properties(info: ModelInfo) -> dict[str, Any]:
    match info:
        case LLMInfo():
            return {"mode": info.mode, "context_size": info.context_size}
        case TextEmbeddingInfo():
            return {"context_size": info.context_size, "max_chunks": max_chunks(info)}
        case RerankInfo():
            return {"context_size": info.context_size}
        case Speech2TextInfo():
            props: dict[str, Any] = {"file_upload_limit": info.file_upload_limit}
            if info.supported_file_extensions:
                props["supported_file_extensions"] = ",".join(info.supported_file_extensions)
            return props
        case TTSInfo():
            return {
                "default_voice": info.default_voice or (info.voices[0].mode if info.voices else "default"),
                "voices": [{"mode": v.mode, "name": v.name, "language": list(v.language)} for v in info.voices],
                "audio_type": info.audio_type,
                "word_limit": info.word_limit,
                "max_workers": info.max_workers,
            }


def model_document(model: CatalogModel, catalog: Catalog, *, customizable: bool = False) -> dict[str, Any]:
    """The Dify model YAML for one catalog model, as plain data."""
    document: dict[str, Any] = {
        "model": model.name,
        "label": dict(model.label),
        "model_type": model.model_type,
        "features": features(model.info),
        "fetch_from": "customizable-model" if customizable else "predefined-model",
        "model_properties": model_properties(model.info),
        "parameter_rules": _parameter_rules(model, catalog),
    }
    if model.deprecated:
        document["deprecated"] = True
    if price := pricing(model.info):
        document["pricing"] = price
    return document


def model_entity(model: CatalogModel, catalog: Catalog, *, customizable: bool = False) -> AIModelEntity:
    return AIModelEntity.model_validate(model_document(model, catalog, customizable=customizable))
