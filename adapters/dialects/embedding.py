"""Translates one batch of Dify texts into an embedding request body, and the answer into vectors.

Two dialects, chosen by the route preset's `dialect`:

- openai (`/v1/embeddings`): LiteLLM's provider config for the route's `litellm` provider
  (hosted_vllm: plain-JSON parsing, ~15x cheaper than the OpenAI SDK path, litellm-notes.md §5)
  builds `{"model","input",...}` and parses `data[]`.
- dashscope (`/api/v1/services/embeddings/text-embedding/text-embedding`): DashScope's native API,
  which LiteLLM does not speak (litellm-notes.md §1, "DashScope protocol coverage"):
  `{"model","input":{"texts"},"parameters":{"text_type","dimension"}}` →
  `output.embeddings[{text_index, embedding}]`, `usage.total_tokens`.

Capabilities come from the catalog: query/document is sent only for models with
`supports_input_type` (`input_type` / `parameters.text_type`), a vector size only for models that
list `dimensions` (`dimensions` / `parameters.dimension`, the model's `output_vector_size`), so every
vector of an index keeps one size even if the backend's default changes.

Vectors come back in input order whatever order the gateway lists them in; a missing or repeated
index is an error, never a silently shorter list. Base64 vectors (OpenAI's
`encoding_format: base64`, little-endian float32) are decoded.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.catalog.loader import CatalogModel
from adapters.dialects.answers import bad_request, by_index, json_answer, required_field, route_path, unusable_answer
from adapters.engine import litellm_facade
from adapters.gateway.errors import stream_error


@dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    vectors: list[list[float]]
    tokens: int | None  # as the gateway counted them; None when it sent no usage


def _dimension(model: CatalogModel) -> int | None:
    return model.info.output_vector_size if model.info.dimensions else None


def build_embedding_request(model: CatalogModel, texts: Sequence[str], input_type: str) -> dict[str, Any]:
    """The request body for one batch; `input_type` is "query" or "document"."""
    info, dimension = model.info, _dimension(model)
    match model.route.dialect:
        case "dashscope":
            parameters: dict[str, Any] = {}
            if info.supports_input_type:
                parameters["text_type"] = input_type
            if dimension:
                parameters["dimension"] = dimension
            body: dict[str, Any] = {"model": model.gateway_model, "input": {"texts": list(texts)}}
            return {**body, "parameters": parameters} if parameters else body
        case "openai":
            try:
                body = litellm_facade.embedding_request_body(
                    provider=model.route.litellm, model=model.gateway_model, texts=texts, dimensions=dimension
                )
            except litellm_facade.NoTranslationError as exc:
                raise bad_request(model, f"route {model.route.name!r}: {exc}.") from exc
            if info.supports_input_type:
                body["input_type"] = input_type
            return body
    raise bad_request(model, f"route {model.route.name!r} has dialect {model.route.dialect!r}, not an embedding one.")


def _vector(value: Any, path: str) -> list[float]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise stream_error(path, f"an embedding is a string but not base64: {value[:40]!r}") from exc
        if len(raw) % 4:
            raise stream_error(path, f"a base64 embedding has {len(raw)} bytes, not whole float32 values")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise stream_error(path, f"an embedding is {type(value).__name__}, not a list of numbers")


def parse_embedding_answer(model: CatalogModel, response: httpx.Response, count: int) -> EmbeddingBatch:
    """The batch's vectors in input order, and the gateway's token count."""
    path = route_path(response)
    if model.route.dialect == "dashscope":
        data = json_answer(response)
        items = required_field(data, "output", "embeddings", path=path)
        with unusable_answer(path):
            pairs = [(item["text_index"], item["embedding"]) for item in items]
        tokens = (data.get("usage") or {}).get("total_tokens")
    else:
        with unusable_answer(path):
            parsed = litellm_facade.parse_embedding_answer(
                provider=model.route.litellm, model=model.gateway_model, response=response
            )
        pairs, tokens = parsed.indexed, parsed.tokens
    found = by_index(pairs, count, path, "embedding", complete=True)
    vectors = [_vector(found[i], path) for i in range(count)]
    dimension = _dimension(model)
    if dimension and any(len(v) != dimension for v in vectors):
        sizes = sorted({len(v) for v in vectors})
        raise stream_error(path, f"{dimension} dimensions were asked for, the vectors have {sizes}")
    # LiteLLM fills absent usage with zeros; a zero count for real texts means "not sent".
    return EmbeddingBatch(vectors, tokens if isinstance(tokens, int) and tokens > 0 else None)
