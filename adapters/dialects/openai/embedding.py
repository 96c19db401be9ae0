"""OpenAI embeddings (`/v1/embeddings`), through LiteLLM's embedding translation for the route's provider.

`{"model","input",...}` → `data[{index, embedding}]`, `usage`. The presets use the `hosted_vllm`
provider: plain-JSON parsing, ~15x cheaper than the OpenAI SDK path for float vectors. A vector
size goes out as `dimensions`, the query/document kind as `input_type` (vLLM, Jina, Voyage).
Base64 vectors (`encoding_format: base64`) are decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.dialects.answers import embedding_batch, route_path, unusable_answer
from adapters.dialects.kinds import EmbeddingBatch, EmbeddingDialect
from adapters.engine.litellm_facade import embedding_request_body, parse_embedding_answer


class OpenAIEmbedding(EmbeddingDialect):
    name = "openai"

    def request_body(
        self, *, provider: str, model: str, texts: Sequence[str], input_type: str | None, dimensions: int | None
    ) -> dict[str, Any]:
        body = embedding_request_body(provider=provider, model=model, texts=texts, dimensions=dimensions)
        if input_type:
            body["input_type"] = input_type
        return body

    def parse_answer(
        self, *, provider: str, model: str, response: httpx.Response, count: int, dimensions: int | None
    ) -> EmbeddingBatch:
        path = route_path(response)
        with unusable_answer(path):
            parsed = parse_embedding_answer(provider=provider, model=model, response=response)
        return embedding_batch(parsed.indexed, parsed.tokens, count=count, dimensions=dimensions, path=path)


DIALECT = OpenAIEmbedding()
