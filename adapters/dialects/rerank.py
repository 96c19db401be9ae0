"""Translates a Dify rerank call into the body of the route's rerank dialect, and the answer into scores.

Three dialects, chosen by the route preset's `dialect` (gateway-protocol.md §1.4):

- cohere (`/v1/rerank`, Cohere / Jina / vLLM): LiteLLM's rerank config for the route's provider
  (hosted_vllm) builds `{"model","query","documents","top_n"}` and parses top-level `results`.
- dashscope-compatible (`/compatible-api/v1/reranks`): LiteLLM's `dashscope` rerank config, same
  body, top-level `results`, DashScope's error envelope.
- dashscope (`/api/v1/services/rerank/text-rerank/text-rerank`): DashScope's native text-rerank,
  which LiteLLM does not speak (litellm-notes.md §1): `{"model","input":{"query","documents"},
  "parameters":{"top_n"}}` → `output.results`.

The answer is reduced to (input index, score) pairs with the score exactly as the gateway sent it;
`return_documents` is never asked for, because the text Dify gets back is its own input, by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.catalog.loader import CatalogModel
from adapters.dialects.answers import bad_request, by_index, json_answer, required_field, route_path, unusable_answer
from adapters.engine import litellm_facade
from adapters.gateway.errors import stream_error

_LITELLM_DIALECTS = ("cohere", "dashscope-compatible")


def build_rerank_request(model: CatalogModel, query: str, documents: Sequence[str], top_n: int | None) -> dict:
    """The request body; `top_n` None asks for every document."""
    if model.route.dialect == "dashscope":
        body: dict[str, Any] = {"model": model.gateway_model, "input": {"query": query, "documents": list(documents)}}
        return {**body, "parameters": {"top_n": top_n}} if top_n else body
    if model.route.dialect in _LITELLM_DIALECTS:
        return litellm_facade.rerank_request_body(
            provider=model.route.litellm, model=model.gateway_model, query=query, documents=documents, top_n=top_n
        )
    raise bad_request(model, f"route {model.route.name!r} has dialect {model.route.dialect!r}, not a rerank one.")


def parse_rerank_answer(model: CatalogModel, response: httpx.Response, count: int) -> dict[int, float]:
    """Input index → score, for the documents the gateway ranked."""
    path = route_path(response)
    if model.route.dialect == "dashscope":
        results = required_field(json_answer(response), "output", "results", path=path)
        with unusable_answer(path):
            pairs = [(r["index"], r["relevance_score"]) for r in results]
    else:
        with unusable_answer(path):
            pairs = litellm_facade.parse_rerank_answer(
                provider=model.route.litellm, model=model.gateway_model, response=response
            )
    scores = by_index(pairs, count, path, "rerank result", complete=False)
    for score in scores.values():
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise stream_error(path, f"a relevance_score is {score!r}, not a number")
    return {index: float(score) for index, score in scores.items()}
