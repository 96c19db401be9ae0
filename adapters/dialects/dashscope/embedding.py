"""DashScope's native text embedding (`/api/v1/services/embeddings/text-embedding/text-embedding`).

LiteLLM does not speak it (its `dashscope` embedding is the OpenAI-compatible mode), so the body is
built here: `{"model","input":{"texts"},"parameters":{"text_type","dimension"}}` →
`output.embeddings[{text_index, embedding}]`, `usage.total_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.dialects.answers import embedding_batch, json_answer, required_field, route_path, unusable_answer
from adapters.dialects.kinds import EmbeddingBatch, EmbeddingDialect


class DashScopeEmbedding(EmbeddingDialect):
    name = "dashscope"

    def request_body(
        self, *, provider: str, model: str, texts: Sequence[str], input_type: str | None, dimensions: int | None
    ) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        if input_type:
            parameters["text_type"] = input_type
        if dimensions:
            parameters["dimension"] = dimensions
        body: dict[str, Any] = {"model": model, "input": {"texts": list(texts)}}
        return {**body, "parameters": parameters} if parameters else body

    def parse_answer(
        self, *, provider: str, model: str, response: httpx.Response, count: int, dimensions: int | None
    ) -> EmbeddingBatch:
        path = route_path(response)
        data = json_answer(response)
        items = required_field(data, "output", "embeddings", path=path)
        with unusable_answer(path):
            pairs = [(item["text_index"], item["embedding"]) for item in items]
        tokens = (data.get("usage") or {}).get("total_tokens")
        return embedding_batch(pairs, tokens, count=count, dimensions=dimensions, path=path)


DIALECT = DashScopeEmbedding()
