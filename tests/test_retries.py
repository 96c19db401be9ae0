"""Bounded retries: only before anything reached Dify, honouring short reset hints, freshly signed each time."""

from __future__ import annotations

import socket
import time

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeConnectionError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from tests.emulator import Consumer, GatewayEmulator, serve


def _ask(llm, credentials, *, stream: bool = False, text: str = "hi") -> str:
    chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content=text)], {}, stream=stream))
    return "".join(c.delta.message.content for c in chunks)


def _with_retries(gateway, base_path: str, **fields: str) -> dict[str, str]:
    credentials = gateway.credentials(base_path, **fields)
    credentials.pop("max_retries")  # the documented default: 2 retries
    return credentials


def test_transient_503s_are_retried_until_the_answer_comes(llm, gateway) -> None:
    assert _ask(llm, _with_retries(gateway, "/_fault/fail-first-2-status-503", retry_backoff="0.05")) == "echo: hi"
    assert gateway.emulator.hits("/chat/completions") == 3


def test_retries_are_bounded_and_the_error_says_how_many(llm, gateway) -> None:
    with pytest.raises(InvokeServerUnavailableError, match="after 3 attempts"):
        _ask(llm, _with_retries(gateway, "/_fault/status-502", retry_backoff="0.05"))
    assert gateway.emulator.hits("/chat/completions") == 3


def test_a_short_reset_hint_is_waited_for(llm, gateway) -> None:
    started = time.monotonic()
    assert _ask(llm, _with_retries(gateway, "/_fault/fail-first-1-status-429-retry-after")) == "echo: hi"
    assert 2.5 < time.monotonic() - started < 8  # Retry-After: 3


def test_a_long_reset_hint_fails_at_once_with_the_hint(llm, gateway) -> None:
    started = time.monotonic()
    with pytest.raises(InvokeRateLimitError, match="retry after 7 s"):
        _ask(llm, _with_retries(gateway, "/_fault/status-429"))
    assert time.monotonic() - started < 2
    assert gateway.emulator.hits("/chat/completions") == 1


def test_bad_requests_are_not_retried(llm, gateway) -> None:
    with pytest.raises(Exception, match="HTTP 400"):
        _ask(llm, _with_retries(gateway, "/_fault/status-400"))
    assert gateway.emulator.hits("/chat/completions") == 1


def test_a_stream_that_broke_after_delivering_is_not_repeated(llm, gateway) -> None:
    with pytest.raises(InvokeServerUnavailableError):
        _ask(llm, _with_retries(gateway, "/_fault/sseerror"), stream=True, text="a b c d e f")
    assert gateway.emulator.hits("/chat/completions") == 1


def test_connection_refused_is_retried_then_reported(llm) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = {"endpoint_url": f"http://127.0.0.1:{port}/v1", "api_key": "k", "retry_backoff": "0.05"}
    with pytest.raises(InvokeConnectionError, match="3 attempts"):
        _ask(llm, credentials)


def test_every_retry_is_signed_afresh(llm) -> None:
    emulator = GatewayEmulator(consumers=[Consumer(name="signer", hmac_access_key="ak-1", hmac_secret_key="sk-1")])
    credentials = {"auth_method": "hmac", "hmac_access_key": "ak-1", "hmac_secret_key": "sk-1", "retry_backoff": "0.05"}
    with serve(emulator) as base_url:
        credentials["endpoint_url"] = f"{base_url}/_fault/fail-first-2-status-503/v1"
        assert _ask(llm, credentials) == "echo: hi"
    attempts = emulator.received
    assert len(attempts) == 3
    # Faults act after authentication: each attempt passed the Higress signature check on its own.
    assert all(r.consumer == "signer" for r in attempts)
    assert len({r.headers["x-ca-nonce"] for r in attempts}) == 3


@pytest.mark.parametrize(("field", "value"), [("max_retries", "7"), ("max_retries", "1.5"), ("retry_backoff", "-1")])
def test_bad_retry_settings_name_the_field(llm, gateway, field: str, value: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=f"'{field}'"):
        llm.validate_credentials("qwen-max", {**gateway.credentials(), field: value})
