"""Cohere-style rerank (`/v1/rerank`: Cohere, Jina, vLLM, llama.cpp), through LiteLLM's rerank translation.

`{"model","query","documents","top_n"}` → top-level `results[{index, relevance_score}]`, built and
read by LiteLLM's rerank config for the route's provider (the preset uses `hosted_vllm`).
`return_documents` is never asked for: the text Dify gets back is its own input, by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.dialects.answers import rerank_scores, route_path, unusable_answer
from adapters.dialects.kinds import RerankDialect
from adapters.engine.litellm_facade import parse_rerank_answer, rerank_request_body


class CohereRerank(RerankDialect):
    name = "cohere"

    def request_body(
        self, *, provider: str, model: str, query: str, documents: Sequence[str], top_n: int | None
    ) -> dict[str, Any]:
        return rerank_request_body(provider=provider, model=model, query=query, documents=documents, top_n=top_n)

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response, count: int) -> dict[int, float]:
        path = route_path(response)
        with unusable_answer(path):
            pairs = parse_rerank_answer(provider=provider, model=model, response=response)
        return rerank_scores(pairs, count=count, path=path)


DIALECT = CohereRerank()
