"""LLM-specific failures: reset hints, gateway words, broken streams, timeouts and bad credentials.

The status and transport faults every model type shares are in tests/test_fault_matrix.py.
"""

from __future__ import annotations

import socket
import time

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
)

from tests.conftest import TEST_KEY


def _run(llm, credentials, *, stream: bool, text: str = "hello") -> list:
    return list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content=text)], {}, stream=stream))


@pytest.mark.parametrize(
    ("fault", "hint"),
    [
        ("status-429", "retry after 7 s (x-tokenratelimit-reset)"),
        ("status-429-retry-after", "retry after 3 s (retry-after)"),
    ],
)
def test_rate_limit_errors_carry_the_reset_hint(llm, gateway, fault: str, hint: str) -> None:
    with pytest.raises(InvokeRateLimitError, match=hint.replace("(", r"\(").replace(")", r"\)")):
        _run(llm, gateway.credentials(f"/_fault/{fault}"), stream=False)


def test_dashscope_envelope_message_and_request_id_reach_the_user(llm, gateway) -> None:
    with pytest.raises(InvokeBadRequestError) as caught:
        _run(llm, gateway.credentials("/_fault/dserror-400"), stream=False)
    assert "request id" in str(caught.value)


@pytest.mark.parametrize("fault", ["ssecut", "ssereset", "badsse", "sseerror"])
def test_a_broken_stream_never_ends_as_a_success(llm, gateway, fault: str) -> None:
    received: list = []
    with pytest.raises(InvokeError):
        for chunk in llm.invoke(
            "qwen-max", gateway.credentials(f"/_fault/{fault}"), [UserPromptMessage(content="a b c d e f")], {}
        ):
            received.append(chunk)
    # Whatever arrived before the break was relayed, but no final chunk claimed the answer was complete.
    assert all(c.delta.finish_reason is None for c in received)


def test_a_gateway_that_never_answers_times_out_within_the_bound(llm, gateway) -> None:
    started = time.monotonic()
    with pytest.raises(InvokeConnectionError, match="read timeout"):
        _run(llm, gateway.credentials("/_fault/stall-30", timeout="0.5"), stream=False)
    assert time.monotonic() - started < 5


def test_a_stream_that_stalls_midway_times_out(llm, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REQUEST_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(InvokeConnectionError):
        _run(llm, gateway.credentials("/_fault/stall-midstream-30"), stream=True, text="a b c d e f")
    assert time.monotonic() - started < 5


def test_connection_refused_is_a_connection_error(llm) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvokeConnectionError, match="Could not connect"):
        _run(llm, {"endpoint_url": f"http://127.0.0.1:{port}/v1", "api_key": TEST_KEY}, stream=False)


def test_validation_fails_with_the_gateways_reason(llm, gateway) -> None:
    credentials = {**gateway.credentials(), "api_key": "sk-wrong"}
    with pytest.raises(CredentialsValidateFailedError, match=r"403.*Unauthorized consumer"):
        llm.validate_credentials("qwen-max", credentials)


def test_validation_passes_with_good_credentials_after_one_small_call(llm, gateway) -> None:
    llm.validate_credentials("qwen-max", gateway.credentials())
    listing, call = gateway.emulator.received  # the model list (none here: 404), then one small call
    assert (listing.method, listing.path, listing.status) == ("GET", "/v1/models", 404)
    assert call.json()["max_tokens"] == 5


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"endpoint_url": "gw.example.com/v1"}, "endpoint_url"),
        ({"endpoint_url": "https://gw.example.com/v1/chat/completions"}, "endpoint_url"),
        ({"endpoint_url": "https://user:pw@gw.example.com/v1"}, "endpoint_url"),
        ({"timeout": "soon"}, "timeout"),
        ({"context_size": "big"}, "context_size"),
        ({"auth_method": "magic"}, "auth_method"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_bad_credentials_name_the_field(llm, gateway, fields: dict, named: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=f"'{named}'"):
        llm.validate_credentials("my-model", {**gateway.credentials(), **fields})
    assert gateway.emulator.received == [], "nothing is sent with bad credentials"
