"""DashScope's native text rerank (`/api/v1/services/rerank/text-rerank/text-rerank`).

LiteLLM does not speak it (its `dashscope` rerank is the compatible API), so the body is built
here: `{"model","input":{"query","documents"},"parameters":{"top_n"}}` → `output.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.dialects.answers import json_answer, required_field, rerank_scores, route_path, unusable_answer
from adapters.dialects.kinds import RerankDialect


class DashScopeRerank(RerankDialect):
    name = "dashscope"

    def request_body(
        self, *, provider: str, model: str, query: str, documents: Sequence[str], top_n: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": {"query": query, "documents": list(documents)}}
        return {**body, "parameters": {"top_n": top_n}} if top_n else body

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response, count: int) -> dict[int, float]:
        path = route_path(response)
        results = required_field(json_answer(response), "output", "results", path=path)
        with unusable_answer(path):
            pairs = [(r["index"], r["relevance_score"]) for r in results]
        return rerank_scores(pairs, count=count, path=path)


DIALECT = DashScopeRerank()
