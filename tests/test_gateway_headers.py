"""Headers beside the request's own: the user's extra headers (credential and LLM parameter), request
attribution (off unless switched on), and the gateway AI-cache skip."""

from __future__ import annotations

from io import BytesIO
from types import SimpleNamespace

import httpx
import pytest
from dify_plugin.core.session_context import use_current_session
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeBadRequestError

from adapters.gateway.config import GatewayConfig
from adapters.gateway.headers import mark
from adapters.models.audio import silence_wav
from tests.conftest import adapter
from tests.emulator import Consumer, GatewayEmulator, serve

SECRET = "tok-7f3a9c2e"
DIFY_SESSION = SimpleNamespace(app_id="app-1", conversation_id="conv-2", message_id="msg-3")
ATTRIBUTION = ("x-dify-app-id", "x-dify-conversation-id", "x-dify-message-id", "x-dify-end-user-id")


def _chat(llm, credentials, params=None, *, stream: bool = False, user: str | None = None, text: str = "hi"):
    messages = [UserPromptMessage(content=text)]
    return list(llm.invoke("qwen-plus", credentials, messages, params or {}, stream=stream, user=user))


# --- extra headers -------------------------------------------------------------------------------


JSON_HEADERS = '{"X-Route": "team-a", "X-Token": "' + SECRET + '"}'


@pytest.mark.parametrize(
    "raw", [JSON_HEADERS, f"X-Route: team-a; X-Token: {SECRET}", f"X-Route: team-a\nX-Token: {SECRET}"]
)
def test_credential_headers_go_with_every_request_of_every_type(llm, gateway, raw: str) -> None:
    credentials = gateway.credentials(extra_headers=raw)
    _chat(llm, credentials, stream=True)
    adapter("text-embedding").invoke("text-embedding-v4", credentials, ["a"])
    adapter("speech2text").invoke("whisper-large-v3", credentials, BytesIO(silence_wav()))
    for received in gateway.emulator.received:
        assert (received.headers["x-route"], received.headers["x-token"]) == ("team-a", SECRET), received.path


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        ("Authorization: Bearer other", "Authorization"),
        ("X-API-Key: other", "X-API-Key"),  # the header this consumer's key travels in
        ("x-ca-key: ak", "x-ca-key"),
        ('{"X-Secret": "' + SECRET + '", "Host": "evil.example.com"}', "Host"),
        ("Content-Type: text/plain", "Content-Type"),
        ("X-Dify-App-Id: forged", "X-Dify-App-Id"),
    ],
)
def test_a_header_that_carries_auth_or_framing_is_refused_by_name(llm, gateway, raw: str, header: str) -> None:
    if not raw.startswith("{"):
        raw = f"X-Secret: {SECRET}; {raw}"
    credentials = gateway.credentials(api_key_header="X-API-Key", extra_headers=raw)
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.validate_credentials("qwen-plus", credentials)
    message = str(caught.value)
    assert message.startswith("Credential field 'extra_headers': ") and f"header {header!r}" in message
    assert SECRET not in message and "other" not in message
    assert gateway.emulator.received == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("X-Route team-a", "is not Name: value"),
        ('{"X-Route": 1}', "must be a JSON string"),
        ('{"X-Route": "a"', "is not a valid JSON object"),
        ("Bad Name: x", "is not a valid HTTP header name"),
        ("X-A: 1; x-a: 2", "given twice"),
        ("X-A: café", "printable ASCII"),
    ],
)
def test_malformed_extra_headers_say_what_is_wrong(llm, gateway, raw: str, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=problem):
        llm.validate_credentials("qwen-plus", gateway.credentials(extra_headers=raw))


def test_a_jwt_consumers_token_header_is_refused_as_an_extra_header() -> None:
    credentials = {
        "endpoint_url": "http://127.0.0.1:9/v1",
        "auth_method": "jwt",
        "jwt_jwks": '{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}',
        "jwt_consumer_id": "c-42",
        "jwt_header_name": "X-Token",
        "extra_headers": "X-Token: forged",
    }
    with pytest.raises(CredentialsValidateFailedError, match=r"extra_headers': header 'X-Token'"):
        GatewayConfig.from_credentials(credentials)


def test_the_llm_parameter_adds_headers_per_call_and_wins_over_the_credential(llm, gateway) -> None:
    credentials = gateway.credentials(extra_headers="X-Route: team-a; X-Tier: silver")
    _chat(llm, credentials, {"extra_headers": '{"X-Tier": "gold", "X-Run": "wf-9"}'})
    headers = gateway.emulator.received[-1].headers
    assert (headers["x-route"], headers["x-tier"], headers["x-run"]) == ("team-a", "gold", "wf-9")
    assert headers.get_list("x-tier") == ["gold"]
    _chat(llm, credentials)
    assert "x-run" not in gateway.emulator.received[-1].headers  # per call only


def test_a_bad_header_parameter_is_a_bad_request_before_any_request(llm, gateway) -> None:
    with pytest.raises(InvokeBadRequestError, match=r"parameter extra_headers: header 'Authorization' carries"):
        _chat(llm, gateway.credentials(), {"extra_headers": f"Authorization: Bearer {SECRET}"})
    assert gateway.emulator.received == []


def test_header_values_are_secrets_masked_in_reports() -> None:
    config = GatewayConfig.from_credentials(
        {"endpoint_url": "https://gw.example.com/v1", "api_key": "sk-k", "extra_headers": f"X-Token: {SECRET}"}
    )
    request = httpx.Request("POST", "https://gw.example.com/v1/chat/completions", headers={"X-Run": "run-31415926"})
    mark(request, added=["X-Token", "X-Run"], secret=["X-Run"])
    assert {("header X-Token", SECRET), ("header X-Run", "run-31415926")} <= set(config.secrets(request))
    assert SECRET not in repr(config)


def test_hmac_signs_the_added_headers(llm) -> None:
    emulator = GatewayEmulator([Consumer("signer", hmac_access_key="ak-1", hmac_secret_key="sk-1")])
    with serve(emulator) as base_url:
        credentials = {
            "endpoint_url": f"{base_url}/v1",
            "auth_method": "hmac",
            "hmac_access_key": "ak-1",
            "hmac_secret_key": "sk-1",
            "extra_headers": "X-Route: team-a",
            "request_attribution": "on",
        }
        _chat(llm, credentials, {"extra_headers": "X-Run: wf-9", "skip_gateway_cache": True}, user="u-1")
    (received,) = emulator.received
    assert received.consumer == "signer"  # the gateway's check of the signature over those headers passed
    signed = received.headers["x-ca-signature-headers"].split(",")
    assert {"x-route", "x-run", "x-higress-skip-ai-cache", "x-dify-end-user-id"} <= set(signed)


# --- request attribution -------------------------------------------------------------------------


def test_attribution_is_off_unless_switched_on(llm, gateway) -> None:
    with use_current_session(DIFY_SESSION):
        _chat(llm, gateway.credentials(), user="end-user-5")
    assert not set(ATTRIBUTION) & set(gateway.emulator.received[-1].headers)
    with pytest.raises(CredentialsValidateFailedError, match="'request_attribution': unknown value 'yes'"):
        llm.validate_credentials("qwen-plus", gateway.credentials(request_attribution="yes"))


def test_attribution_sends_the_invocations_dify_ids(llm, gateway) -> None:
    credentials = gateway.credentials(request_attribution="on")
    with use_current_session(DIFY_SESSION):
        chunks = _chat(llm, credentials, stream=True, user="end-user-5")
    assert "".join(c.delta.message.content for c in chunks) == "echo: hi"
    headers = gateway.emulator.received[-1].headers
    assert [headers.get(name) for name in ATTRIBUTION] == ["app-1", "conv-2", "msg-3", "end-user-5"]


def test_only_the_ids_that_are_known_are_sent_and_odd_ones_percent_encoded(llm, gateway) -> None:
    credentials = gateway.credentials(request_attribution="on")
    with use_current_session(SimpleNamespace(app_id="app-1", conversation_id=None, message_id="")):
        _chat(llm, credentials, user="Zoë Ng\r\nX-Evil: 1")
    headers = gateway.emulator.received[-1].headers
    assert [headers.get(name) for name in ATTRIBUTION] == ["app-1", None, None, "Zo%C3%AB%20Ng%0D%0AX-Evil%3A%201"]
    _chat(llm, credentials)  # outside an app, without a user: nothing to send
    assert not set(ATTRIBUTION) & set(gateway.emulator.received[-1].headers)


def test_every_model_type_attributes_its_end_user(gateway) -> None:
    credentials = gateway.credentials(request_attribution="on")
    adapter("text-embedding").invoke("text-embedding-v4", credentials, ["a"], user="u-7")
    adapter("rerank").invoke("gte-rerank-v2", credentials, "q", ["a", "b"], user="u-7")
    adapter("speech2text").invoke("whisper-large-v3", credentials, BytesIO(silence_wav()), user="u-7")
    list(adapter("tts").invoke("tts-1", "tenant", credentials, "Hello.", "alloy", user="u-7"))
    assert [r.headers.get("x-dify-end-user-id") for r in gateway.emulator.received] == ["u-7"] * 4


# --- gateway AI-cache control --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "stream"])
def test_a_cache_hit_reaches_dify_with_the_gateways_zero_usage_and_skipping_asks_afresh(
    llm, gateway, stream: bool
) -> None:
    credentials = gateway.credentials("/_fault/ai-cache")
    first = _chat(llm, credentials, stream=stream, text="what is higress")
    hit = _chat(llm, credentials, stream=stream, text="what is higress")
    assert "".join(c.delta.message.content for c in hit) == "".join(c.delta.message.content for c in first)
    assert hit[-1].delta.usage.total_tokens == 0 and hit[-1].delta.usage.total_price == 0
    fresh = _chat(llm, credentials, {"skip_gateway_cache": True}, stream=stream, text="what is higress")
    assert fresh[-1].delta.usage.total_tokens > 0
    assert gateway.emulator.received[-1].headers["x-higress-skip-ai-cache"] == "on"
    assert "x-higress-skip-ai-cache" not in gateway.emulator.received[0].headers  # off unless asked
