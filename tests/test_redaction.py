"""No credential value in anything the plugin reports, even when the gateway echoes them back.

A hostile gateway (or a careless plugin in front of it) copies the request's Authorization header,
API key, query key, JWT and HMAC headers into its error body, its request id and its
X-Ca-Error-Message. The plugin quotes the gateway's words, so every such value must reach the
user masked, by the name of the field it came from: in the InvokeError text, in every log record,
and in the traceback the SDK sends Dify along with the error.
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qsl, quote, unquote

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeError

from adapters.gateway.redaction import Redactor
from tests.conftest import PLUGIN_ROOT, adapter
from tests.emulator import Request, Response, serve
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data

# Values with characters a query string percent-encodes, so the encoded echo is tested too.
API_KEY = "sk-hostile/echo+key=0042"
ACCESS_KEY = "ak-hostile-access-0042"
SECRET_KEY = "hmac-secret-never-sent-0042"
JWT_SECRET = "jwt-hs256-secret-never-sent-0042"
CONSUMERS: dict[str, dict[str, str]] = {
    "api-key": {"api_key": API_KEY},
    "api-key-header": {"api_key": API_KEY, "api_key_header": "X-Api-Key"},
    "api-key-query": {"api_key": API_KEY, "api_key_query": "key"},
    "jwt": {
        "auth_method": "jwt",
        "jwt_jwks": json.dumps({"kty": "oct", "k": base64.urlsafe_b64encode(JWT_SECRET.encode()).decode()}),
        "jwt_consumer_id": "consumer-1",
    },
    "hmac": {"auth_method": "hmac", "hmac_access_key": ACCESS_KEY, "hmac_secret_key": SECRET_KEY},
}
_ECHOED_HEADERS = ("authorization", "x-api-key", "x-ca-key", "x-ca-signature")


def _echo(request: Request) -> str:
    """Everything credential-like the request carried, as a gateway would quote it."""
    values = [f"{name}={request.headers[name]}" for name in _ECHOED_HEADERS if name in request.headers]
    return "; ".join([*values, f"query={request.query}", f"decoded={unquote(request.query)}"])


class HostileGateway:
    """Answers every request with `status` (or, streaming, a 200 whose first event is an error),
    quoting the request's credentials in its error text, request id and X-Ca-Error-Message."""

    def __init__(self, status: int, stream: bool) -> None:
        self.status, self.stream = status, stream
        self.sent: list[str] = []  # the credential header values that arrived, JWTs and signatures

    def __call__(self, request: Request) -> Response:
        self.sent += [request.headers[name] for name in _ECHOED_HEADERS if name in request.headers]
        self.sent += [value for _, value in parse_qsl(request.query)]
        echo = _echo(request)
        content_type = ("Content-Type", "text/event-stream" if self.stream else "application/json")
        error = {"error": {"message": f"Request denied by the hostile gateway: {echo}", "code": str(self.status)}}
        if self.stream:
            return Response(200, [content_type], [f"data: {json.dumps(error)}\n\n".encode()])
        headers = [
            content_type,
            ("X-Request-Id", request.headers.get("authorization") or request.headers.get("x-ca-key") or request.query),
            ("X-Ca-Error-Message", f"Invalid Signature, Server StringToSign:`POST#{echo}#/v1/chat/completions`"),
        ]
        return Response(self.status, headers, json.dumps({**error, "request_id": echo}).encode())


def _never_shown(gateway: HostileGateway) -> list[str]:
    """Every credential value, as configured, as sent and percent-encoded."""
    sent = [value.removeprefix("Bearer ") for value in gateway.sent]
    values = [API_KEY, ACCESS_KEY, SECRET_KEY, JWT_SECRET, *sent]
    return sorted({form for value in values for form in (value, quote(value, safe=""))})


def _chat(credentials: dict[str, str], stream: bool) -> None:
    list(adapter("llm").invoke("qwen-max", credentials, [UserPromptMessage(content="hi")], {}, stream=stream))


def _credentials(base_url: str, consumer: str) -> dict[str, str]:
    return {"endpoint_url": f"{base_url}/v1", "max_retries": "1", "retry_backoff": "0", **CONSUMERS[consumer]}


FAULTS = {"401": (401, False), "400-signature": (400, False), "503-retried": (503, False), "stream-event": (200, True)}
MASKS = {"api-key": "[api_key]", "api-key-header": "[api_key]", "api-key-query": "[api_key]", "jwt": "[jwt]"}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_echoed_credentials_are_masked_in_errors_and_logs(
    fault: str, consumer: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, stream = FAULTS[fault]
    gateway = HostileGateway(status, stream)
    caplog.set_level(logging.DEBUG)
    with serve(gateway) as base_url, pytest.raises(InvokeError) as caught:
        _chat(_credentials(base_url, consumer), stream=stream)
    message = str(caught.value)
    assert "Request denied by the hostile gateway" in message, "the gateway's words are still quoted"
    assert MASKS.get(consumer, "[hmac_access_key]") in message, message
    assert gateway.sent, "the credentials went on the wire"
    shown = [message, repr(caught.value), *(record.getMessage() for record in caplog.records)]
    if fault == "503-retried":  # the retry's log line quotes the echoing request id, masked
        assert any("AI Gateway retry" in text and "request_id=" in text and "[" in text for text in shown), shown
    for secret in _never_shown(gateway):
        assert not any(secret in text for text in shown), (secret, shown)


def test_a_rejected_signature_shows_the_gateways_string_to_sign_with_the_access_key_masked() -> None:
    gateway = HostileGateway(400, stream=False)
    with serve(gateway) as base_url, pytest.raises(InvokeError) as caught:
        _chat(_credentials(base_url, "hmac"), stream=False)
    assert "gateway Invalid Signature, Server StringToSign:`POST#x-ca-key=[hmac_access_key]" in str(caught.value)


def test_the_error_dify_receives_carries_no_credential_in_its_traceback_either() -> None:
    """The SDK sends Dify the error's traceback with its causes; none of them may hold a secret."""
    gateway = HostileGateway(401, stream=False)
    with serve(gateway) as base_url, PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        for consumer in ("api-key-query", "hmac"):
            data = chat_data("aliyun_ai_gateway", "qwen-max", _credentials(base_url, consumer), "hi", stream=False)
            with pytest.raises(PluginSessionError) as caught:
                plugin.request("invoke_llm", data)
            reported = json.dumps([caught.value.message, caught.value.description, caught.value.error_args])
            assert "Request denied by the hostile gateway" in reported
            emitted = reported + json.dumps(plugin.logs) + plugin.stderr_text()
            for secret in _never_shown(gateway):
                assert secret not in emitted, secret


def test_a_redactor_masks_every_form_and_shows_no_value_itself() -> None:
    redact = Redactor([("api_key", API_KEY), ("hmac_access_key", "ak-1")])
    token = "eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJjb25zdW1lci0xIn0.c2lnbmF0dXJl"
    text = f"a={API_KEY} b={quote(API_KEY, safe='')} c=ak-1 d=back-10 e=Bearer {token}"
    assert redact(text) == "a=[api_key] b=[api_key] c=[hmac_access_key] d=back-10 e=Bearer [jwt]"
    assert API_KEY not in repr(redact) and "ak-1" not in repr(redact)


@pytest.mark.parametrize(
    "url", ["https://user:s3cret-pass@gw.example.com/v1", "s3cret-pass@gw.example.com/v1", "ftp://s3cret-pass/v1"]
)
def test_an_endpoint_url_with_user_info_is_refused_without_echoing_it(url: str) -> None:
    from adapters.gateway.config import GatewayConfig

    with pytest.raises(Exception, match="endpoint_url") as caught:
        GatewayConfig.from_credentials({"endpoint_url": url, "api_key": "sk-1"})
    assert "s3cret" not in str(caught.value)
