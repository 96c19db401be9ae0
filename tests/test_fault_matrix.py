"""Every gateway fault ends in the right Dify error on every model type, quickly, with no socket left open.

The LLM's streaming-only faults (cut or broken SSE, content-security blocks) live in
tests/test_llm_errors.py and tests/test_llm.py; this matrix covers what all five types share.

Each case runs a distinct code path. An error answer is turned into a Dify error by one mapping in
the transport, so every fault runs once, on a blocking chat; every other call (model type and
dialect) meets an error status (its own error wrapping) and a broken 200 answer (its own answer
parser); a dropped connection and a stalled gateway are met once per kind of request (streamed
chat, multipart upload) besides the blocking chat.
"""

from __future__ import annotations

import io
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest
import trustme
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from adapters.engine.litellm_facade import litellm
from adapters.models.audio import silence_wav
from tests.conftest import TEST_KEY, adapter, client_sockets_to
from tests.emulator import Consumer, GatewayEmulator, serve

Invoke = Callable[[dict], object]


def _chat(stream: bool) -> Invoke:
    from dify_plugin.entities.model.message import UserPromptMessage

    return lambda c: list(adapter("llm").invoke("qwen-max", c, [UserPromptMessage(content="a b c")], {}, stream=stream))


# One minimal call per model type and dialect, each on a fresh adapter object as Dify makes them.
INVOKERS: dict[str, Invoke] = {
    "llm-blocking": _chat(False),
    "llm-stream": _chat(True),
    "embedding-openai": lambda c: adapter("text-embedding").invoke("text-embedding-v3", c, ["hello"]),
    "embedding-dashscope": lambda c: adapter("text-embedding").invoke("text-embedding-v4", c, ["hello"]),
    "rerank-cohere": lambda c: adapter("rerank").invoke("bge-reranker-v2-m3", c, "q", ["q doc"], None, None),
    "rerank-compatible": lambda c: adapter("rerank").invoke("qwen3-rerank", c, "q", ["q doc"], None, None),
    "rerank-dashscope": lambda c: adapter("rerank").invoke("gte-rerank-v2", c, "q", ["q doc"], None, None),
    "speech2text": lambda c: adapter("speech2text").invoke("whisper-large-v3", c, io.BytesIO(silence_wav())),
    "tts-openai": lambda c: list(adapter("tts").invoke("tts-1", "tenant", c, "Hello there.", "alloy")),
    "tts-dashscope": lambda c: list(adapter("tts").invoke("qwen-tts", "tenant", c, "Hello there.", "Cherry")),
}
VALIDATE_MODELS = {
    "llm": "qwen-max",
    "text-embedding": "text-embedding-v3",
    "rerank": "gte-rerank-v2",
    "speech2text": "whisper-large-v3",
    "tts": "tts-1",
}

FAULTS = [
    ("status-400", InvokeBadRequestError),
    ("status-401", InvokeAuthorizationError),
    ("status-403", InvokeAuthorizationError),
    ("status-404", InvokeBadRequestError),
    ("status-408", InvokeConnectionError),
    ("status-413", InvokeBadRequestError),
    ("status-422", InvokeBadRequestError),
    ("status-429", InvokeRateLimitError),
    ("status-429-retry-after", InvokeRateLimitError),
    ("status-429-bare", InvokeRateLimitError),
    ("status-500", InvokeServerUnavailableError),
    ("status-502", InvokeServerUnavailableError),
    ("status-503", InvokeServerUnavailableError),
    ("status-504", InvokeServerUnavailableError),
    ("html-502", InvokeServerUnavailableError),
    ("dserror-400", InvokeBadRequestError),
    ("dserror-500", InvokeServerUnavailableError),
    ("badjson", InvokeServerUnavailableError),
    ("close", InvokeConnectionError),
    ("stall-30", InvokeConnectionError),
]


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded() -> None:
    """LiteLLM's one-time import (seconds on a busy machine) is no part of any fault's time bound."""
    litellm()


ERRORS = dict(FAULTS)
CASES = [("llm-blocking", fault) for fault, _ in FAULTS]
CASES += [(call, fault) for call in INVOKERS if call != "llm-blocking" for fault in ("status-503", "badjson")]
CASES += [(call, fault) for call in ("llm-stream", "speech2text") for fault in ("close", "stall-30")]


@pytest.mark.parametrize(("call", "fault"), CASES)
def test_fault_maps_to_the_right_error_quickly(gateway, call: str, fault: str) -> None:
    error = ERRORS[fault]
    credentials = gateway.credentials(f"/_fault/{fault}", timeout="0.5")
    started = time.monotonic()
    with pytest.raises(error) as caught:
        INVOKERS[call](credentials)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert TEST_KEY not in message
    if fault.startswith(("status-", "dserror-", "html-")):
        assert f"HTTP {fault.split('-')[1]}" in message, message


def test_the_matrix_leaves_no_socket_behind(gateway) -> None:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    sockets = client_sockets_to(port)
    for call, fault in CASES:
        with pytest.raises(ERRORS[fault]):
            # A fresh timeout value makes a fresh credential set, hence a fresh pool per run.
            INVOKERS[call](gateway.credentials(f"/_fault/{fault}", timeout="0.51"))
    # Error answers are read and closed; at most one idle keep-alive connection may stay per pool
    # (one pool per fault); a leak per call would leave twice as many.
    assert client_sockets_to(port) - sockets <= len(FAULTS) < len(CASES) / 2


def test_connection_refused_on_every_type() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = {"endpoint_url": f"http://127.0.0.1:{port}/v1", "api_key": TEST_KEY, "max_retries": "0"}
    for call in INVOKERS.values():
        with pytest.raises(InvokeConnectionError, match="Could not connect"):
            call(credentials)


@pytest.fixture(scope="module")
def untrusted_tls_gateway() -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    with serve(GatewayEmulator(consumers=[Consumer(name="t", api_key=TEST_KEY)]), ssl_context=context) as url:
        yield url


def test_an_untrusted_certificate_on_every_type(untrusted_tls_gateway: str) -> None:
    credentials = {"endpoint_url": f"{untrusted_tls_gateway}/v1", "api_key": TEST_KEY, "max_retries": "0"}
    for call in INVOKERS.values():
        with pytest.raises(InvokeConnectionError, match="not trusted"):
            call(credentials)


@pytest.mark.parametrize("model_type", VALIDATE_MODELS)
def test_validation_failures_are_credential_errors_with_the_reason(gateway, model_type: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match="HTTP 503"):
        adapter(model_type).validate_credentials(VALIDATE_MODELS[model_type], gateway.credentials("/_fault/status-503"))
