"""A 2xx answer the plugin cannot use is reported by what was wrong, never by quoting it.

Every answer below carries MARK where a gateway would put the user's data (the answer text, a
vector, a score); the error must say which field, event or input failed and how long the body
was, and hold nothing of MARK.
"""

from __future__ import annotations

import json

import pydantic
import pytest
from dify_plugin.errors.model import InvokeServerUnavailableError

from tests.conftest import PLUGIN_ROOT
from tests.emulator import Request, Response, serve
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data
from tests.test_fault_matrix import INVOKERS

MARK = "PRIVATE-ANSWER-7731"
JSON = "application/json"


def _sse(*payloads: str) -> bytes:
    return "".join(f"data: {p}\n\n" for p in payloads).encode()


def _delta(delta: dict) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta}]})


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


# (call, content type, body, what the error must say)
CASES = [
    ("llm-blocking", "text/html", f"<p>{MARK}</p>".encode(), "the body is not JSON (26 bytes of text/html)"),
    ("llm-blocking", JSON, _json({"id": "x", "note": MARK}), "the answer has no choices (its fields: id, note)"),
    ("llm-blocking", JSON, _json({MARK + " " * 50: 1}), "the answer has no choices (its fields: none and 1 more)"),
    ("llm-blocking", JSON, _json({"choices": [{"message": MARK}]}), "the answer could not be read (Exception"),
    ("llm-blocking", JSON, _json([MARK]), "expected a JSON object, got a JSON list"),
    (
        "llm-stream",
        "text/event-stream",
        _sse(_delta({"content": MARK}), f"{MARK} and more", "[DONE]"),
        "event 2 (28 characters) is not JSON",
    ),
    ("llm-stream", "text/event-stream", _sse(_delta({"content": 5, "role": MARK})), "event 1 could not be read"),
    (
        "embedding-openai",
        JSON,
        _json({"data": [{"index": 0, "embedding": MARK + "!!"}]}),
        "embedding 0 is a string of 21 characters, not base64",
    ),
    (
        "embedding-openai",
        JSON,
        _json({"data": [{"index": MARK, "embedding": [0.1]}]}),
        "the embedding index is a str, not an input position",
    ),
    (
        "embedding-openai",
        JSON,
        _json({"data": [{"index": 0, "embedding": [MARK] * 1024}]}),
        "embedding 0 holds values that are not numbers",
    ),
    (
        "embedding-openai",
        JSON,
        _json({"data": [{"index": 0, "embedding": [0.5] * 1023 + [True]}]}),
        "embedding 0 holds values that are not numbers",
    ),
    (
        "embedding-dashscope",
        JSON,
        _json({"output": {"embeddings": [{"text_index": MARK, "embedding": [0.1]}]}}),
        "the embedding index is a str, not an input position",
    ),
    (
        "rerank-cohere",
        JSON,
        _json({"results": [{"index": 0, "relevance_score": MARK}]}),
        "could not be read (ValueError)",
    ),
    (
        "rerank-dashscope",
        JSON,
        _json({"output": {"results": [{"index": 0, "relevance_score": MARK}]}}),
        "the relevance_score of input 0 is a str, not a number",
    ),
    ("tts-openai", JSON, _json({"error": MARK}), f"expected audio, got {len(MARK) + 13} bytes of application/json"),
    ("tts-dashscope", JSON, _json({"output": {"audio": {"url": f"::{MARK}"}}}), "is not a"),
]


_IDS = [f"{case[0]}-{number}" for number, case in enumerate(CASES)]


@pytest.mark.parametrize(("call", "content_type", "body", "expected"), CASES, ids=_IDS)
def test_an_unusable_answer_is_described_not_quoted(call: str, content_type: str, body: bytes, expected: str) -> None:
    def answer(request: Request) -> Response:
        return Response(200, [("Content-Type", content_type)], body)

    with serve(answer) as base_url, pytest.raises(InvokeServerUnavailableError) as caught:
        INVOKERS[call]({"endpoint_url": f"{base_url}/v1", "api_key": "sk-unusable", "max_retries": "0"})
    message = str(caught.value)
    assert "is unusable: " in message and expected in message, message
    assert MARK not in message and "PRIVATE" not in message, message


def test_the_traceback_dify_receives_holds_no_answer_either() -> None:
    """The SDK sends the error's traceback with its causes; LiteLLM's cause quotes the whole answer."""
    body = _json({"choices": [{"message": MARK}]})

    def answer(request: Request) -> Response:
        return Response(200, [("Content-Type", JSON)], body)

    credentials = {"api_key": "sk-unusable", "max_retries": "0"}
    with serve(answer) as base_url, PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        data = chat_data("aliyun_ai_gateway", "qwen-max", {**credentials, "endpoint_url": f"{base_url}/v1"}, "q")
        with pytest.raises(PluginSessionError) as caught:
            plugin.request("invoke_llm", {**data, "stream": False})
    assert caught.value.error_type == "InvokeServerUnavailableError"
    assert caught.value.traceback and "could not be read" in caught.value.traceback
    assert MARK not in json.dumps(caught.value.error_args) + plugin.stderr_text()


def test_a_result_dify_would_refuse_is_named_by_field_not_value() -> None:
    """The last mapping of any error: a pydantic refusal of values built from an answer names the
    fields and the kind of problem, never the values."""
    from dify_plugin.entities.model.text_embedding import EmbeddingUsage, TextEmbeddingResult

    from adapters.gateway.errors import to_invoke_error

    usage = EmbeddingUsage(
        tokens=1, total_tokens=1, unit_price=0, price_unit=0, total_price=0, currency="RMB", latency=0
    )
    with pytest.raises(pydantic.ValidationError) as caught:
        TextEmbeddingResult(model="m", embeddings=[[MARK, 0.5]], usage=usage)
    message = str(to_invoke_error(caught.value))
    assert MARK not in message
    assert "TextEmbeddingResult rejected 1 value(s) (embeddings.0.0: float_parsing)" in message, message
