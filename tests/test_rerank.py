"""The rerank adapter against the gateway emulator: the scores Dify gets, and what the gateway receives.

The emulator scores a document by the share of the query's words it contains (`overlap_score`),
so every expected score here is computed, not copied.
"""

from __future__ import annotations

# dify_plugin applies gevent's monkey-patching on import: before the emulator's server threads start.
import dify_plugin  # noqa: F401
import httpx
import pytest
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeServerUnavailableError,
)

from adapters.catalog.resolver import resolve_model
from adapters.dialects.kinds import RerankDialect
from adapters.dialects.registry import dialect
from adapters.models.base import _catalog_entities
from adapters.models.rerank.rerank import AIGatewayRerankModel
from tests.emulator import overlap_score

QUERY = "red apple pie"
DOCS = ["a red car", "green apple pie", "red apple pie recipe", "nothing here", "apple"]
# model, path, where query / documents / top_n sit in the body
DIALECTS = [
    ("gte-rerank-v2", "/api/v1/services/rerank/text-rerank/text-rerank", "native"),
    ("qwen3-rerank", "/compatible-api/v1/reranks", "flat"),
    ("bge-reranker-v2-m3", "/v1/rerank", "flat"),
]


@pytest.fixture
def reranker() -> AIGatewayRerankModel:
    return AIGatewayRerankModel(list(_catalog_entities("rerank")))


def _expected(docs: list[str], query: str = QUERY) -> list[tuple[int, float]]:
    scored = [(i, overlap_score(query, d)) for i, d in enumerate(docs)]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0]))


def _pairs(result) -> list[tuple[int, float]]:
    return [(d.index, d.score) for d in result.docs]


@pytest.mark.parametrize(("model", "path", "shape"), DIALECTS)
def test_each_dialect_returns_the_gateway_scores_mapped_to_the_input(reranker, gateway, model, path, shape) -> None:
    result = reranker.invoke(model, gateway.credentials(), QUERY, DOCS, None, None)
    assert _pairs(result) == _expected(DOCS)
    assert all(d.text == DOCS[d.index] for d in result.docs)
    assert result.model == model
    received = gateway.emulator.received[-1]
    assert received.path == path
    body = received.json()
    gateway_model = resolve_model("rerank", model, {}).gateway_model
    if shape == "native":
        assert body == {"model": gateway_model, "input": {"query": QUERY, "documents": DOCS}}
    else:
        assert body == {"model": gateway_model, "query": QUERY, "documents": DOCS}


@pytest.mark.parametrize(("model", "path", "shape"), DIALECTS)
def test_top_n_is_sent_and_applied(reranker, gateway, model, path, shape) -> None:
    result = reranker.invoke(model, gateway.credentials(), QUERY, DOCS, None, 2)
    assert _pairs(result) == _expected(DOCS)[:2]
    body = gateway.last_json()
    assert (body["parameters"]["top_n"] if shape == "native" else body["top_n"]) == 2


@pytest.mark.parametrize("top_n", [None, 0, -1, 99])
def test_top_n_none_or_not_positive_means_every_document(reranker, gateway, top_n) -> None:
    result = reranker.invoke("qwen3-rerank", gateway.credentials(), QUERY, DOCS, None, top_n)
    assert len(result.docs) == len(DOCS)


def test_a_single_document_keeps_its_real_score(reranker, gateway) -> None:
    result = reranker.invoke("bge-reranker-v2-m3", gateway.credentials(), "red apple", ["a red car"], None, None)
    assert _pairs(result) == [(0, 0.5)]  # no min-max rescaling: one document is not 0


def test_score_threshold_keeps_scores_at_or_above_it(reranker, gateway) -> None:
    threshold = overlap_score(QUERY, "green apple pie")  # 2/3, reached exactly by one document
    result = reranker.invoke("gte-rerank-v2", gateway.credentials(), QUERY, DOCS, threshold, None)
    assert _pairs(result) == [(i, s) for i, s in _expected(DOCS) if s >= threshold]
    assert threshold in [d.score for d in result.docs]


def test_zero_threshold_is_no_threshold(reranker, gateway) -> None:
    # The daemon sends Dify's null as 0.0; documents scoring 0 (or a negative logit) must stay.
    result = reranker.invoke("gte-rerank-v2", gateway.credentials(), QUERY, DOCS, 0.0, 0)
    assert len(result.docs) == len(DOCS)


def test_no_documents_is_an_empty_ranking_without_a_request(reranker, gateway) -> None:
    result = reranker.invoke("gte-rerank-v2", gateway.credentials(), QUERY, [], None, None)
    assert (result.model, result.docs) == ("gte-rerank-v2", [])
    assert gateway.emulator.received == []


def test_empty_query_is_refused_before_any_request(reranker, gateway) -> None:
    with pytest.raises(InvokeBadRequestError, match=r"gte-rerank-v2.*query"):
        reranker.invoke("gte-rerank-v2", gateway.credentials(), "  ", DOCS, None, None)
    assert gateway.emulator.received == []


def test_more_documents_than_max_documents_are_ranked_across_requests(reranker, gateway) -> None:
    # gte-rerank-v2 takes at most 500 documents per request; the emulator refuses more.
    docs = [f"filler {i}" for i in range(500)] + ["red apple pie"]
    result = reranker.invoke("gte-rerank-v2", gateway.credentials(), QUERY, docs, None, 3)
    sizes = [len(r.json()["input"]["documents"]) for r in gateway.emulator.received]
    assert sizes == [500, 1]
    assert _pairs(result) == _expected(docs)[:3]
    assert result.docs[0].index == 500 and result.docs[0].text == "red apple pie"


@pytest.mark.parametrize("route", ["openai-rerank", "dashscope-compatible-rerank", "dashscope-rerank"])
def test_customizable_model_on_each_route(reranker, gateway, route: str) -> None:
    result = reranker.invoke("my-reranker", gateway.credentials(route_preset=route), QUERY, DOCS, None, None)
    assert _pairs(result) == _expected(DOCS)
    assert gateway.last_json()["model"] == "my-reranker"


def test_validate_credentials(reranker, gateway) -> None:
    reranker.validate_credentials("qwen3-rerank", gateway.credentials())
    assert gateway.last_json()["documents"] == ["ping"]
    with pytest.raises(CredentialsValidateFailedError, match=r"^Model 'qwen3-rerank': AI Gateway answered HTTP 429"):
        reranker.validate_credentials("qwen3-rerank", gateway.credentials("/_fault/status-429"))


# ---------------------------------------------------------------------------------------------
# Answers the emulator does not produce


def _answer(body: object) -> httpx.Response:
    return httpx.Response(200, json=body, request=httpx.Request("POST", "http://gw/v1/rerank"))


COHERE = dialect(RerankDialect, "cohere")


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        ([{"index": 3, "relevance_score": 0.5}], "out of range"),
        ([{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}], "repeated"),
        ([{"index": 0}], r"unusable: the answer could not be read \(ValueError\)"),
        ([{"index": 0, "relevance_score": "high"}], r"unusable: the answer could not be read \(ValueError\)"),
    ],
)
def test_unusable_results_are_errors(results, problem: str) -> None:
    with pytest.raises(InvokeServerUnavailableError, match=problem):
        COHERE.parse_answer(provider="hosted_vllm", model="m", response=_answer({"results": results}), count=2)


def test_scores_are_passed_through_exactly() -> None:
    answer = _answer({"results": [{"index": 1, "relevance_score": -3.25}, {"index": 0, "relevance_score": 1e-9}]})
    assert COHERE.parse_answer(provider="hosted_vllm", model="m", response=answer, count=2) == {1: -3.25, 0: 1e-9}
