"""The text-embedding adapter against the gateway emulator: the vectors Dify gets, and what the gateway receives."""

from __future__ import annotations

import base64
import struct
from decimal import ROUND_HALF_UP, Decimal

# dify_plugin applies gevent's monkey-patching on import: before the emulator's server threads start.
import dify_plugin  # noqa: F401
import httpx
import pytest
from dify_plugin.entities.model import EmbeddingInputType, ModelPropertyKey
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeServerUnavailableError,
)

from adapters.catalog.loader import default_catalog
from adapters.dialects.kinds import EmbeddingDialect
from adapters.dialects.registry import dialect
from adapters.models.base import _catalog_entities
from adapters.models.text_embedding.text_embedding import AIGatewayTextEmbeddingModel
from tests.emulator import count_words, embedding_vector

OPENAI_PATH = "/v1/embeddings"
NATIVE_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"


@pytest.fixture
def embedder() -> AIGatewayTextEmbeddingModel:
    return AIGatewayTextEmbeddingModel(list(_catalog_entities("text-embedding")))


def _close(actual: list[list[float]], expected: list[tuple[float, ...]]) -> bool:
    return len(actual) == len(expected) and all(
        a == pytest.approx(list(e)) for a, e in zip(actual, expected, strict=True)
    )


def test_openai_route_vectors_usage_and_price(embedder, gateway) -> None:
    texts = ["the quick brown fox", "jumps over", "the lazy dog"]
    result = embedder.invoke("text-embedding-v3", gateway.credentials(), texts)
    assert _close(result.embeddings, [embedding_vector(t, 1024) for t in texts])
    model = default_catalog().get("text-embedding", "text-embedding-v3")
    tokens = sum(count_words(t) for t in texts)
    usage = result.usage
    assert (usage.tokens, usage.total_tokens) == (tokens, tokens)
    # Priced like the SDK's get_price: quantized to 1e-7 of the currency.
    assert usage.total_price == (tokens * model.info.input_cost_per_token).quantize(Decimal("1e-7"), ROUND_HALF_UP)
    assert usage.unit_price == model.info.input_cost_per_token * 1_000_000 and usage.currency == "USD"
    received = gateway.emulator.received[-1]
    assert received.path == OPENAI_PATH
    # v3 lists dimension choices, so its 1024 is always asked for; it has no query/document switch.
    assert received.json() == {"model": "text-embedding-v3", "input": texts, "dimensions": 1024}


@pytest.mark.parametrize("input_type", [EmbeddingInputType.QUERY, EmbeddingInputType.DOCUMENT])
def test_dashscope_native_route_sends_text_type_and_dimension(embedder, gateway, input_type) -> None:
    texts = ["什么是 AI 网关", "a gateway"]
    result = embedder.invoke("text-embedding-v4", gateway.credentials(), texts, input_type=input_type)
    assert _close(result.embeddings, [embedding_vector(t, 1024) for t in texts])
    received = gateway.emulator.received[-1]
    assert received.path == NATIVE_PATH
    assert received.json() == {
        "model": "text-embedding-v4",
        "input": {"texts": texts},
        "parameters": {"text_type": input_type.value, "dimension": 1024},
    }
    assert result.usage.tokens == sum(count_words(t) for t in texts)


@pytest.mark.parametrize("route", ["openai-embeddings", "dashscope-embeddings"])
def test_batches_of_max_chunks_keep_input_order(embedder, gateway, route: str) -> None:
    texts = [f"text number {i}" for i in range(25)]
    credentials = gateway.credentials(route_preset=route, max_chunks="10")
    result = embedder.invoke("my-embedder", credentials, texts)
    assert _close(result.embeddings, [embedding_vector(t, 8) for t in texts])  # the emulator's default size
    sent = [r.json() for r in gateway.emulator.received]
    batches = [b["input"] if route == "openai-embeddings" else b["input"]["texts"] for b in sent]
    # The batches go out together (adapters/models/batches.py), so they arrive in any order.
    assert sorted(batches, key=lambda batch: texts.index(batch[0])) == [texts[:10], texts[10:20], texts[20:]]
    assert result.usage.tokens == 3 * 25


def test_customizable_model_sends_only_what_it_declares(embedder, gateway) -> None:
    plain = gateway.credentials(route_preset="openai-embeddings")
    embedder.invoke("bge-m3", plain, ["hello"], input_type=EmbeddingInputType.QUERY)
    assert gateway.last_json() == {"model": "bge-m3", "input": ["hello"]}

    declared = gateway.credentials(route_preset="openai-embeddings", dimensions="16", supports_input_type="supported")
    result = embedder.invoke("bge-m3", declared, ["hello"], input_type=EmbeddingInputType.QUERY)
    assert gateway.last_json() == {"model": "bge-m3", "input": ["hello"], "dimensions": 16, "input_type": "query"}
    assert len(result.embeddings[0]) == 16


def test_customizable_price_is_per_million_tokens(embedder, gateway) -> None:
    credentials = gateway.credentials(input_price="0.5", currency="USD")
    usage = embedder.invoke("priced-embedder", credentials, ["one two three four"]).usage
    assert usage.unit_price == Decimal("0.5") and usage.currency == "USD"
    assert usage.total_price == Decimal("0.0000020")


def test_customizable_schema_reports_max_chunks(embedder) -> None:
    schema = embedder.get_customizable_model_schema("x", {"max_chunks": "32", "context_size": "512"})
    assert schema.model_properties[ModelPropertyKey.MAX_CHUNKS] == 32
    assert schema.model_properties[ModelPropertyKey.CONTEXT_SIZE] == 512
    default = embedder.get_customizable_model_schema("x", {"endpoint_url": "http://gw/v1"})
    assert default.model_properties[ModelPropertyKey.MAX_CHUNKS] == 10


@pytest.mark.parametrize("texts", [[], ["fine", ""]])
def test_empty_input_is_refused_before_any_request(embedder, gateway, texts) -> None:
    with pytest.raises(InvokeBadRequestError, match="text-embedding-v3"):
        embedder.invoke("text-embedding-v3", gateway.credentials(), texts)
    assert gateway.emulator.received == []


def test_get_num_tokens_is_offline(embedder, gateway) -> None:
    counts = embedder.get_num_tokens("text-embedding-v4", gateway.credentials(), ["hello world", "a", ""])
    assert counts[0] >= 2 and counts[1] >= 1 and counts[2] == 0
    assert gateway.emulator.received == []


def test_validate_credentials(embedder, gateway) -> None:
    embedder.validate_credentials("text-embedding-v4", gateway.credentials())
    assert gateway.last_json()["input"] == {"texts": ["ping"]}
    with pytest.raises(CredentialsValidateFailedError, match=r"^Model 'text-embedding-v3': AI Gateway answered HTTP 4"):
        embedder.validate_credentials("text-embedding-v3", {**gateway.credentials(), "api_key": "sk-wrong"})


# ---------------------------------------------------------------------------------------------
# The answer's translation, on answers the emulator does not produce


def _answer(body: object, path: str = OPENAI_PATH) -> httpx.Response:
    return httpx.Response(200, json=body, request=httpx.Request("POST", f"http://gw{path}"))


OPENAI = dialect(EmbeddingDialect, "openai")
DASHSCOPE = dialect(EmbeddingDialect, "dashscope")


def _parse(wire: EmbeddingDialect, response: httpx.Response, count: int, dimensions: int | None = None):
    return wire.parse_answer(provider="hosted_vllm", model="m", response=response, count=count, dimensions=dimensions)


def test_base64_vectors_in_any_order_come_back_decoded_in_input_order() -> None:
    first, second = [0.25, -1.5, 3.0], [1.0, 2.0, 0.125]
    encoded = [base64.b64encode(struct.pack("<3f", *v)).decode() for v in (first, second)]
    body = {"data": [{"index": 1, "embedding": encoded[1]}, {"index": 0, "embedding": encoded[0]}]}
    batch = _parse(OPENAI, _answer(body), 2)
    assert batch.vectors == [first, second]
    assert batch.tokens is None  # no usage: the adapter counts offline


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([{"index": 0, "embedding": [1.0]}], "no embedding for input"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}], "out of range or repeated"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 2, "embedding": [1.0]}], "out of range or repeated"),
        ([{"index": 0, "embedding": "not base64!"}, {"index": 1, "embedding": [1.0]}], "not base64"),
    ],
)
def test_incomplete_answers_are_errors_not_short_lists(data, problem: str) -> None:
    with pytest.raises(InvokeServerUnavailableError, match=problem):
        _parse(OPENAI, _answer({"data": data}), 2)


@pytest.mark.parametrize("wire", [OPENAI, DASHSCOPE])
def test_vectors_of_another_size_than_asked_for_are_an_error(wire: EmbeddingDialect) -> None:
    body = {"data": [{"index": 0, "embedding": [0.1] * 8}], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    native = {"output": {"embeddings": [{"text_index": 0, "embedding": [0.1] * 8}]}}
    answer = _answer(body) if wire is OPENAI else _answer(native, NATIVE_PATH)
    with pytest.raises(InvokeServerUnavailableError, match="1024 dimensions were asked for, the vectors have \\[8\\]"):
        _parse(wire, answer, 1, dimensions=1024)
    assert _parse(wire, answer, 1, dimensions=8).vectors == [[0.1] * 8]


def test_native_answer_without_output_is_an_error() -> None:
    body = {"code": "InvalidParameter", "message": "oops"}
    with pytest.raises(InvokeServerUnavailableError, match="output"):
        _parse(DASHSCOPE, _answer(body, NATIVE_PATH), 1)


def test_request_bodies_per_dialect() -> None:
    native = DASHSCOPE.request_body(
        provider="dashscope", model="v4", texts=["a"], input_type="document", dimensions=1024
    )
    assert native == {
        "model": "v4",
        "input": {"texts": ["a"]},
        "parameters": {"text_type": "document", "dimension": 1024},
    }
    bare = DASHSCOPE.request_body(provider="dashscope", model="x", texts=["a"], input_type=None, dimensions=None)
    assert bare == {"model": "x", "input": {"texts": ["a"]}}
    openai = OPENAI.request_body(provider="hosted_vllm", model="x", texts=["a"], input_type="query", dimensions=16)
    assert openai == {"model": "x", "input": ["a"], "dimensions": 16, "input_type": "query"}
