"""Cohere-style rerank (`/v1/rerank`: Cohere, Jina, vLLM, llama.cpp), through LiteLLM's rerank translation.

`{"model","query","documents","top_n"}` → top-level `results[{index, relevance_score}]` (Voyage:
`data`), built and read by LiteLLM's rerank config for the route's provider (the preset uses
`hosted_vllm`).
`return_documents` is never asked for: the text Dify gets back is its own input, by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.dialects.answers import rerank_scores, route_path, unusable_answer
from adapters.dialects.kinds import RerankDialect
from adapters.engine.litellm_facade import parse_rerank_answer, rerank_request_body


def _results_named_results(response: httpx.Response) -> httpx.Response:
    """The answer with Voyage's `data` list named `results`, the only name LiteLLM's parser reads;
    any other answer as it came (LiteLLM judges it)."""
    try:
        answer = response.json()
    except ValueError:
        return response
    if not isinstance(answer, dict) or "results" in answer or not isinstance(answer.get("data"), list):
        return response
    return httpx.Response(response.status_code, json={**answer, "results": answer["data"]}, request=response.request)


class CohereRerank(RerankDialect):
    name = "cohere"

    def request_body(
        self, *, provider: str, model: str, query: str, documents: Sequence[str], top_n: int | None
    ) -> dict[str, Any]:
        return rerank_request_body(provider=provider, model=model, query=query, documents=documents, top_n=top_n)

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response, count: int) -> dict[int, float]:
        path = route_path(response)
        with unusable_answer(path):
            pairs = parse_rerank_answer(provider=provider, model=model, response=_results_named_results(response))
        return rerank_scores(pairs, count=count, path=path)


DIALECT = CohereRerank()
