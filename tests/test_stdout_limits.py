"""No answer, however large, becomes a stdout line the plugin daemon cannot read.

The daemon reads the plugin's stdout with a 5 MiB line scanner and loses the line (and, with one
process serving every tenant, every other session) when a line is longer. The gateway emulator's
hostile faults (tests/emulator/hostile.py) send answers of several MiB; the stdio driver kills the
plugin, as the daemon would, on any longer line, so every test here also proves no line was.
What can be split is split (a stream's text and its tool calls); what cannot ends in a bad request
naming the size, and the plugin keeps serving.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dify_plugin.core.server.__base.response_writer import ResponseWriter
from dify_plugin.entities.model import ModelPropertyKey
from dify_plugin.entities.model.rerank import RerankResult
from dify_plugin.entities.model.text_embedding import EmbeddingUsage, TextEmbeddingResult
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.message_size import PLANNED_RESULT_BYTES
from tests.conftest import PLUGIN_ROOT, Gateway, adapter
from tests.emulator.hostile import big_text
from tests.stdio_driver import DAEMON_MAX_LINE_BYTES, PluginProcess, PluginSessionError, chat_data

PROVIDER = "aliyun_ai_gateway"
SIX_MIB = 6 * 1024 * 1024
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}
# The longest a float is in pydantic's JSON.
LONGEST_FLOAT = -2.2250738585072014e-308


@pytest.fixture(scope="module")
def plugin() -> Iterator[PluginProcess]:
    with PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as process:
        yield process


class _Capture(ResponseWriter):
    def __init__(self) -> None:
        self.text = ""

    def write(self, data: str) -> None:
        self.text += data

    def done(self) -> None:
        pass


def sdk_line_bytes(result: Any) -> int:
    """The stdout line the SDK writes for one stream item of a session, in bytes."""
    writer = _Capture()
    writer.session_message(session_id=str(uuid.uuid4()), data=writer.stream_object(result))
    return len(writer.text.rstrip("\n").encode())


def _bad_request(caught: pytest.ExceptionInfo[PluginSessionError]) -> str:
    assert caught.value.error_type == "InvokeBadRequestError", caught.value
    return caught.value.description or ""


def _still_serves(plugin: PluginProcess, gateway: Gateway) -> None:
    items = plugin.request("invoke_llm", chat_data(PROVIDER, "qwen-plus", gateway.credentials(), "still here"))
    assert "".join(item["delta"]["message"]["content"] for item in items) == "echo: still here"


# --------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("dimensions", [1024, 2048, 3072, 4096, None])
def test_max_chunks_dify_is_told_keeps_a_worst_case_result_under_the_limit(dimensions: int | None) -> None:
    form = {"max_chunks": "2048", "context_size": "8192", **({"dimensions": str(dimensions)} if dimensions else {})}
    schema = adapter("text-embedding").get_customizable_model_schema("team-embedder", form)
    texts = schema.model_properties[ModelPropertyKey.MAX_CHUNKS]
    size = dimensions or 4096  # a model declaring no size is planned for at 4,096 dimensions
    assert texts < 2048

    def result(count: int) -> TextEmbeddingResult:
        usage = EmbeddingUsage(
            tokens=10**9, total_tokens=10**9, unit_price=1, price_unit=1, total_price=10**9, currency="USD", latency=1.0
        )
        return TextEmbeddingResult(model="team-embedder", embeddings=[[LONGEST_FLOAT] * size] * count, usage=usage)

    # Every float at its longest, the line still fits within the plan (a fifth under the limit), and
    # the count is the most that does: two more vectors would not.
    assert sdk_line_bytes(result(texts)) <= PLANNED_RESULT_BYTES < sdk_line_bytes(result(texts + 2))
    assert PLANNED_RESULT_BYTES <= 0.8 * DAEMON_MAX_LINE_BYTES


def test_the_catalog_models_keep_their_max_chunks(plugin: PluginProcess, gateway: Gateway) -> None:
    schema = plugin.request(
        "get_ai_model_schemas",
        {
            "provider": PROVIDER,
            "model_type": "text-embedding",
            "model": "text-embedding-v4",
            "credentials": gateway.credentials(),
        },
    )[-1]["model_schema"]
    assert schema["model_properties"]["max_chunks"] == 10  # DashScope's own cap is below the size cap


def test_more_texts_than_max_chunks_is_a_bad_request_naming_the_size(plugin: PluginProcess, gateway: Gateway) -> None:
    texts = [f"text number {i}" for i in range(300)]  # 300 vectors of 1,024 floats: ~6 MB of JSON
    with pytest.raises(PluginSessionError) as caught:
        plugin.request(
            "invoke_text_embedding",
            {"provider": PROVIDER, "model": "text-embedding-v4", "credentials": gateway.credentials(), "texts": texts},
            timeout=30,
        )
    description = _bad_request(caught)
    assert "300 vectors of 1,024 dimensions" in description
    assert "-byte message" in description and "5,242,880 bytes (5 MiB)" in description
    assert "at most 10 texts per call" in description
    _still_serves(plugin, gateway)


def test_longer_vectors_than_the_gateway_should_send_are_a_bad_request(plugin: PluginProcess, gateway: Gateway) -> None:
    # No size declared: Dify is told the texts that fit at 4,096 dimensions (here the form's 10); a
    # hostile gateway answers with 40,000.
    credentials = gateway.credentials("/_fault/dims-40000", route_preset="openai-embeddings")
    with pytest.raises(PluginSessionError) as caught:
        plugin.request(
            "invoke_text_embedding",
            {
                "provider": PROVIDER,
                "model": "team-embedder",
                "credentials": credentials,
                "texts": [f"t{i}" for i in range(10)],
            },
            timeout=30,
        )
    assert "10 vectors of 40,000 dimensions" in _bad_request(caught)
    _still_serves(plugin, gateway)


# --------------------------------------------------------------------------- chat


def _chat(plugin: PluginProcess, credentials: dict, *, stream: bool, **data: Any) -> list[dict[str, Any]]:
    return plugin.request(
        "invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, "write a lot", stream=stream, **data), timeout=60
    )


def test_a_6_mib_stream_delta_reaches_dify_split_over_several_chunks(plugin: PluginProcess, gateway: Gateway) -> None:
    items = _chat(plugin, gateway.credentials(f"/_fault/big-{SIX_MIB}"), stream=True)
    pieces = [item["delta"]["message"]["content"] for item in items]
    assert "".join(pieces) == big_text(SIX_MIB)
    assert sum(1 for piece in pieces if piece) >= 2
    assert items[-1]["delta"]["finish_reason"] == "stop" and items[-1]["delta"]["usage"] is not None


def test_a_blocking_answer_is_one_message_when_it_fits(plugin: PluginProcess, gateway: Gateway) -> None:
    # 3 MB of text is under the limit as JSON, though at the worst escaping cost it would not be.
    [item] = _chat(plugin, gateway.credentials("/_fault/big-3000000"), stream=False)
    assert item["delta"]["message"]["content"] == big_text(3_000_000)


def test_a_6_mib_blocking_answer_is_a_bad_request_naming_its_size(plugin: PluginProcess, gateway: Gateway) -> None:
    with pytest.raises(PluginSessionError) as caught:
        _chat(plugin, gateway.credentials(f"/_fault/big-{SIX_MIB}"), stream=False)
    description = _bad_request(caught)
    assert f"the answer ({len(big_text(SIX_MIB)):,} characters)" in description
    assert "-byte message" in description and "stream the answer instead" in description
    _still_serves(plugin, gateway)


def test_6_mib_of_tool_call_arguments_are_a_bad_request_naming_the_call(
    plugin: PluginProcess, gateway: Gateway
) -> None:
    with pytest.raises(PluginSessionError) as caught:
        _chat(plugin, gateway.credentials(f"/_fault/big-{SIX_MIB}"), stream=True, tools=[WEATHER])
    description = _bad_request(caught)
    assert "the tool call 'get_weather'" in description and "-byte message" in description
    _still_serves(plugin, gateway)


def test_large_tool_calls_go_to_dify_whole_in_several_chunks(plugin: PluginProcess, gateway: Gateway) -> None:
    # Three calls of ~3 MB each: no two fit in one message, each fits alone.
    credentials = gateway.credentials("/_fault/big-2500000/_fault/calls-3")
    items = _chat(plugin, credentials, stream=True, tools=[WEATHER])
    carrying = [item for item in items if item["delta"]["message"]["tool_calls"]]
    calls = [call for item in carrying for call in item["delta"]["message"]["tool_calls"]]
    assert len(carrying) == 3
    assert [json.loads(call["function"]["arguments"]) for call in calls] == [{"query": big_text(2_500_000)}] * 3
    assert len({call["id"] for call in calls}) == 3
    assert items[-1]["delta"]["finish_reason"] == "tool_calls"


# --------------------------------------------------------------------------- other types


def test_a_6_mib_transcript_is_a_bad_request_naming_its_size(plugin: PluginProcess, gateway: Gateway) -> None:
    from adapters.models.audio import silence_wav

    with pytest.raises(PluginSessionError) as caught:
        plugin.request(
            "invoke_speech2text",
            {
                "provider": PROVIDER,
                "model": "whisper-large-v3",
                "credentials": gateway.credentials(f"/_fault/big-{SIX_MIB}"),
                "file": silence_wav(0.1),
            },
            timeout=30,
        )
    description = _bad_request(caught)
    assert f"the transcript ({len(big_text(SIX_MIB)):,} characters)" in description
    _still_serves(plugin, gateway)


def test_ranked_documents_too_large_for_one_message_are_a_bad_request(gateway: Gateway) -> None:
    docs = [f"document {i} " + "x" * (2 * 1024 * 1024) for i in range(3)]
    with pytest.raises(InvokeBadRequestError) as caught:
        adapter("rerank").invoke("gte-rerank-v2", gateway.credentials(), "document", docs)
    assert "the 3 ranked documents with their texts" in str(caught.value)
    assert "(top_n)" in str(caught.value)
    fitting = adapter("rerank").invoke("gte-rerank-v2", gateway.credentials(), "document", docs, top_n=2)
    assert isinstance(fitting, RerankResult) and sdk_line_bytes(fitting) < DAEMON_MAX_LINE_BYTES
