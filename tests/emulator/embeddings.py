"""Embeddings: OpenAI `/v1/embeddings` and DashScope native `text-embedding/text-embedding`.

Vectors are unit-length, derived from SHA-256 of the text, and rounded to float32 so the
float and base64 (little-endian float32) encodings carry identical values. Usage counts
words. More inputs than `max_batch` give DashScope's batch-size error.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from functools import lru_cache
from typing import Any

from .context import Context
from .responses import dashscope_error, json_response, openai_error
from .wire import Response
from .words import count_words

__all__ = ["dashscope_embeddings", "embedding_vector", "openai_embeddings"]

_MAX_DIM = 8192


@lru_cache(maxsize=4096)
def embedding_vector(text: str, dim: int) -> tuple[float, ...]:
    """The emulator's embedding of `text` with `dim` dimensions (public so tests can compare)."""
    seed = text.encode("utf-8")
    raw = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(math.ceil(dim * 4 / 32)))
    values = [int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 2**31 - 1.0 for i in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in values)))


def _batch_error(ctx: Context) -> Response:
    limit = ctx.settings.max_batch
    return dashscope_error(
        400, "InvalidParameter", f"batch size is invalid, it should not be larger than {limit}.", ctx.request_id()
    )


def _texts(raw: Any) -> list[tuple[str, int]] | None:
    """(text, word count) per input; token-id arrays count one word per id."""
    if isinstance(raw, str):
        return [(raw, count_words(raw))]
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(x, int) for x in raw):
        return [(" ".join(map(str, raw)), len(raw))]
    out: list[tuple[str, int]] = []
    for item in raw:
        if isinstance(item, str):
            out.append((item, count_words(item)))
        elif isinstance(item, list) and all(isinstance(x, int) for x in item):
            out.append((" ".join(map(str, item)), len(item)))
        else:
            return None
    return out


def openai_embeddings(ctx: Context) -> Response:
    body = ctx.json_object()
    if body is None:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    texts = _texts(body.get("input"))
    if texts is None:
        return openai_error(400, "'input' must be a non-empty string or array", "invalid_request_error", param="input")
    if len(texts) > ctx.settings.max_batch:
        return _batch_error(ctx)
    dim = body.get("dimensions", ctx.settings.embedding_dim)
    if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim <= _MAX_DIM:
        return openai_error(400, f"Invalid dimensions: {dim!r}", "invalid_request_error", param="dimensions")
    dim = ctx.faults.dims or dim
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, (text, _) in enumerate(texts):
        vector = embedding_vector(text, dim)
        encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii") if as_base64 else list(vector)
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(words for _, words in texts)
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def dashscope_embeddings(ctx: Context) -> Response:
    body = ctx.json_object()
    request_id = ctx.request_id()
    if body is None:
        return dashscope_error(400, "InvalidParameter", "The request body is not valid JSON.", request_id)
    payload = body.get("input")
    texts = _texts(payload.get("texts") if isinstance(payload, dict) else None)
    if texts is None:
        return dashscope_error(
            400, "InvalidParameter", "input.texts should be a non-empty array of strings.", request_id
        )
    if len(texts) > ctx.settings.max_batch:
        return _batch_error(ctx)
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    dim = parameters.get("dimension", ctx.settings.embedding_dim)
    if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim <= _MAX_DIM:
        return dashscope_error(400, "InvalidParameter", f"dimension is invalid: {dim!r}", request_id)
    dim = ctx.faults.dims or dim
    embeddings = [{"text_index": i, "embedding": list(embedding_vector(t, dim))} for i, (t, _) in enumerate(texts)]
    tokens = sum(words for _, words in texts)
    return json_response(
        {"output": {"embeddings": embeddings}, "usage": {"total_tokens": tokens}, "request_id": request_id}
    )
