"""Rerank in the three dialects the gateway routes (Model Studio text-rerank API reference,
https://www.alibabacloud.com/help/en/model-studio/text-rerank-api; alibaba/higress ai-proxy
`provider/cohere.go`, `provider/vllm.go`, `provider/qwen.go`).

- Cohere/Jina/vLLM `/v1/rerank` (also `/v2/rerank`): top-level query/documents, `results`.
- DashScope OpenAI-style `/compatible-api/v1/reranks` (suffix `/v1/reranks`): same body,
  top-level `results`, DashScope error envelope.
- DashScope native `/api/v1/services/rerank/text-rerank/text-rerank`: `input`/`parameters`,
  `output.results`.
relevance_score = share of the query's distinct words found in the document (words.py),
so one overlapping document never scores 0. Results are sorted by score (ties by index).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .context import Context
from .responses import dashscope_error, json_response, openai_error
from .wire import Response
from .words import count_words, overlap_score

__all__ = ["cohere_rerank", "dashscope_compatible_rerank", "dashscope_native_rerank"]

MAX_DOCUMENTS = 500


def _doc_text(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Mapping):  # {"text": ...}; image/video documents rank as empty text
        return str(doc.get("text", ""))
    return None


def _rank(query: str, documents: Sequence[Any], top_n: Any, return_documents: bool) -> tuple[list[dict[str, Any]], int]:
    texts = [_doc_text(d) or "" for d in documents]
    scored = sorted(((overlap_score(query, t), i) for i, t in enumerate(texts)), key=lambda pair: (-pair[0], pair[1]))
    if isinstance(top_n, int) and not isinstance(top_n, bool) and top_n > 0:
        scored = scored[:top_n]
    results = []
    for score, index in scored:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if return_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    tokens = count_words(query) + sum(count_words(t) for t in texts)
    return results, tokens


def _validate(query: Any, documents: Any) -> str | None:
    if not isinstance(query, str) or not query:
        return "query must be a non-empty string"
    if not isinstance(documents, list) or not documents:
        return "documents must be a non-empty array"
    if len(documents) > MAX_DOCUMENTS:
        return f"the number of documents should not be larger than {MAX_DOCUMENTS}"
    if any(_doc_text(d) is None for d in documents):
        return "documents must be strings or objects"
    return None


def cohere_rerank(ctx: Context) -> Response:
    body = ctx.json_object()
    if body is None:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if problem := _validate(body.get("query"), body.get("documents")):
        return openai_error(400, problem, "invalid_request_error")
    results, tokens = _rank(body["query"], body["documents"], body.get("top_n"), bool(body.get("return_documents")))
    return json_response(
        {
            "id": f"rerank-{ctx.next_seq()}",
            "model": body.get("model"),
            "usage": {"total_tokens": tokens},
            "results": results,
        }
    )


def dashscope_compatible_rerank(ctx: Context) -> Response:
    body = ctx.json_object()
    request_id = ctx.request_id()
    if body is None:
        return dashscope_error(400, "InvalidParameter", "The request body is not valid JSON.", request_id)
    if problem := _validate(body.get("query"), body.get("documents")):
        return dashscope_error(400, "InvalidParameter", problem, request_id)
    results, tokens = _rank(body["query"], body["documents"], body.get("top_n"), bool(body.get("return_documents")))
    return json_response(
        {
            "object": "list",
            "results": results,
            "model": body.get("model"),
            "id": request_id,
            "usage": {"total_tokens": tokens},
        }
    )


def dashscope_native_rerank(ctx: Context) -> Response:
    body = ctx.json_object()
    request_id = ctx.request_id()
    if body is None:
        return dashscope_error(400, "InvalidParameter", "The request body is not valid JSON.", request_id)
    payload = body.get("input") if isinstance(body.get("input"), dict) else {}
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    if problem := _validate(payload.get("query"), payload.get("documents")):
        return dashscope_error(400, "InvalidParameter", problem, request_id)
    results, tokens = _rank(
        payload["query"], payload["documents"], parameters.get("top_n"), bool(parameters.get("return_documents"))
    )
    return json_response({"output": {"results": results}, "usage": {"total_tokens": tokens}, "request_id": request_id})
