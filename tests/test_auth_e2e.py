"""Consumer auth end to end: `python -m main` over stdio (as Dify's daemon runs it) against the gateway emulator.

One plugin process and one emulator with every consumer configured serve the whole module. Every
auth method (API key in Authorization / a custom header / a query parameter, JWT HS256 / RS256 /
ES256 / in a custom header, HMAC SHA256 / SHA1) streams a chat, and every action Dify sends (the
provider's credential check, a streamed chat, an embedding, a rerank, a TTS and a transcription)
runs HMAC-signed, the method whose work depends on the request, through the SDK's real dispatch
path; every request that reaches the gateway is checked as in tests/test_auth_matrix.py, which
covers every combination in process. Bad auth input of each scheme is refused before any request,
a rejected signature reaches Dify with the gateway's string-to-sign, and at the end the plugin's
logs, stderr and every error it reported are searched for keys, tokens, secrets and signatures.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.models.validation import MODELS_PATH
from tests.conftest import PLUGIN_ROOT
from tests.emulator import GatewayEmulator, ReceivedRequest, embedding_vector, make_wav, overlap_score, serve
from tests.emulator.audio import encode_audio
from tests.emulator.auth import Authenticator
from tests.stdio_driver import PluginProcess, PluginSessionError, prompt_message
from tests.test_auth_matrix import (
    BAD_INPUT,
    BAD_INPUT_IDS,
    BASE_PATH,
    CHAT,
    METHOD_IDS,
    AuthMethod,
    all_secrets,
    auth_methods,
    bad_credentials,
    check_wire,
    credential_values,
    transcript,
    verdict_authenticator,
)

PROVIDER = "aliyun_ai_gateway"
RERANK = {
    "gte-rerank-v2": "/api/v1/services/rerank/text-rerank/text-rerank",
    "qwen3-rerank": "/compatible-api/v1/reranks",
    "bge-reranker-v2-m3": "/v1/rerank",
}
TTS = {"tts-1": "/v1/audio/speech", "qwen-tts": "/api/v1/services/aigc/multimodal-generation/generation"}


@dataclass
class Stack:
    plugin: PluginProcess
    emulator: GatewayEmulator
    base_url: str
    verdict: Authenticator
    # Every session error and every wrong secret tried, for the final search for leaks.
    errors: list[PluginSessionError] = field(default_factory=list)
    tried_secrets: list[str] = field(default_factory=list)

    def credentials(self, method: AuthMethod, **overrides: str) -> dict[str, str]:
        return {"endpoint_url": f"{self.base_url}{BASE_PATH}/v1", "max_retries": "0", **method.fields, **overrides}

    def request(self, action: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            return self.plugin.request(action, {"provider": PROVIDER, **data}, timeout=30)
        except PluginSessionError as error:
            self.errors.append(error)
            raise


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    emulator = GatewayEmulator(consumers=[m.consumer for m in auth_methods().values()])
    with serve(emulator) as base_url, PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        yield Stack(plugin, emulator, base_url, verdict_authenticator())


class Received:
    """The requests the emulator got from here on."""

    def __init__(self, emulator: GatewayEmulator) -> None:
        self._emulator = emulator
        self._start = len(emulator.received)

    @property
    def all(self) -> list[ReceivedRequest]:
        return list(self._emulator.received[self._start :])


def _error_text(error: PluginSessionError) -> str:
    return "\n".join([str(error), error.description or "", json.dumps(error.error_args)])


# ---------------------------------------------------------------------------------------------
# Each action, with the route its POST must reach and a check of the answer
# ---------------------------------------------------------------------------------------------


def _validate(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    result = stack.request(
        "validate_provider_credentials", {"credentials": {**credentials, "validate_model": "qwen-turbo"}}
    )
    assert result[-1]["result"] is True
    return [MODELS_PATH, CHAT]  # the model list first (this gateway has none: 404), then the call


def _chat(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    text = f"hello {marker}"
    items = stack.request(
        "invoke_llm",
        {
            "model": "qwen-plus",
            "credentials": credentials,
            "prompt_messages": [prompt_message("user", text)],
            "model_parameters": {},
            "stream": True,
        },
    )
    assert len(items) > 2
    assert "".join(item["delta"]["message"]["content"] or "" for item in items) == f"echo: {text}"
    return [CHAT]


def _embed(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    texts = [f"embed {marker}", "another text"]
    result = stack.request(
        "invoke_text_embedding", {"model": "text-embedding-v3", "credentials": credentials, "texts": texts}
    )
    for text, vector in zip(texts, result[-1]["embeddings"], strict=True):
        assert vector == pytest.approx(list(embedding_vector(text, len(vector))))
    return ["/v1/embeddings"]


def _rerank(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    model = list(RERANK)[index % len(RERANK)]  # the three dialects spread over the methods
    query, docs = f"red apple {marker}", ["a red car", f"apple {marker}", "nothing"]
    result = stack.request("invoke_rerank", {"model": model, "credentials": credentials, "query": query, "docs": docs})
    expected = sorted(((i, overlap_score(query, d)) for i, d in enumerate(docs)), key=lambda p: (-p[1], p[0]))
    assert [(d["index"], d["score"]) for d in result[-1]["docs"]] == expected
    return [RERANK[model]]


def _speak(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    model = list(TTS)[index % len(TTS)]
    text = f"Say {marker}."
    items = stack.request(
        "invoke_tts", {"model": model, "credentials": credentials, "content_text": text, "voice": "", "tenant_id": "t"}
    )
    audio = b"".join(bytes.fromhex(item["result"]) for item in items)
    assert audio == (make_wav(text.encode()) if model == "qwen-tts" else encode_audio(text, "mp3")[1])
    return [TTS[model], "/_files/"] if model == "qwen-tts" else [TTS[model]]


def _transcribe(stack: Stack, credentials: dict[str, str], marker: str, index: int) -> list[str]:
    audio = make_wav(f"speech {marker}".encode())
    result = stack.request(
        "invoke_speech2text", {"model": "whisper-large-v3", "credentials": credentials, "file": audio}
    )
    assert result[-1]["result"] == transcript(audio)
    return ["/v1/audio/transcriptions"]


ACTIONS: dict[str, Callable[[Stack, dict[str, str], str, int], list[str]]] = {
    "validate_provider_credentials": _validate,
    "invoke_llm-stream": _chat,
    "invoke_text_embedding": _embed,
    "invoke_rerank": _rerank,
    "invoke_tts": _speak,
    "invoke_speech2text": _transcribe,
}


def test_the_plugin_starts(stack: Stack) -> None:
    assert stack.plugin.manifest is not None and stack.plugin.is_alive()


# The streamed chat under every method; every action under HMAC. The index picks the rerank and TTS
# dialects: 1 is the DashScope-compatible rerank and qwen-tts, whose audio is downloaded (signed, empty body).
CASES = [pytest.param(m, "invoke_llm-stream", 0, id=f"{m}-invoke_llm-stream") for m in METHOD_IDS] + [
    pytest.param("hmac-sha256", a, 1, id=f"hmac-sha256-{a}") for a in ACTIONS if a != "invoke_llm-stream"
]


@pytest.mark.parametrize(("method_id", "action", "index"), CASES)
def test_auth_through_stdio(stack: Stack, method_id: str, action: str, index: int) -> None:
    method = auth_methods()[method_id]
    received = Received(stack.emulator)
    paths = ACTIONS[action](stack, stack.credentials(method), f"mk{secrets.token_hex(4)}", index)
    requests = received.all
    assert [r.path if r.method == "POST" or r.path.endswith(MODELS_PATH) else "/_files/" for r in requests] == [
        BASE_PATH + p if p != "/_files/" else p for p in paths
    ]
    for r in requests:
        check_wire(method, r, stack.verdict, status=404 if r.path.endswith(MODELS_PATH) else 200)


# ---------------------------------------------------------------------------------------------
# Bad input and rejected credentials, as Dify sees them
# ---------------------------------------------------------------------------------------------


# Over stdio the SDK reports each scheme's parse error the same way; tests/test_auth_matrix.py runs every case.
OVER_STDIO = {"jwks-invalid-json", "empty-hmac-access-key", "empty-api-key", "unknown-auth-method"}


@pytest.mark.parametrize(
    ("case", "fields", "field_name", "secret"),
    [c for c in BAD_INPUT if c[0] in OVER_STDIO],
    ids=[i for i in BAD_INPUT_IDS if i in OVER_STDIO],
)
def test_bad_auth_input_fails_provider_validation_before_any_request(
    stack: Stack, case: str, fields: Callable[[], dict[str, str]], field_name: str, secret: str | None
) -> None:
    received = Received(stack.emulator)
    with pytest.raises(PluginSessionError) as caught:
        stack.request("validate_provider_credentials", {"credentials": bad_credentials(stack.base_url, fields())})
    assert caught.value.error_type == "CredentialsValidateFailedError"
    assert f"Credential field '{field_name}'" in caught.value.message
    assert received.all == []
    if secret:
        stack.tried_secrets.append(secret)
        assert secret not in _error_text(caught.value)


def _reject_hmac(stack: Stack, action: str) -> PluginSessionError:
    method = auth_methods()["hmac-sha256"]
    wrong = f"wrong-{secrets.token_hex(12)}"
    stack.tried_secrets.append(wrong)
    received = Received(stack.emulator)
    with pytest.raises(PluginSessionError) as caught:
        ACTIONS[action](stack, stack.credentials(method, hmac_secret_key=wrong), "mkrejected", 0)
    *listing, rejected = received.all  # a validation asked for the model list first: refused too
    assert [r.status for r in listing] == ([400] if action.startswith("validate") else [])
    assert rejected.status == 400 and rejected.consumer is None
    text = _error_text(caught.value)
    for leaked in (wrong, *all_secrets(), rejected.headers["x-ca-signature"]):
        assert leaked not in text
    assert "gateway Server StringToSign:`POST#" in caught.value.message
    assert "x-ca-key:[hmac_access_key]#" in caught.value.message
    assert method.consumer.hmac_access_key not in text
    assert f"#{BASE_PATH}/" in caught.value.message
    return caught.value


def test_a_rejected_signature_is_an_authorization_error_quoting_the_string_to_sign(stack: Stack) -> None:
    error = _reject_hmac(stack, "invoke_llm-stream")
    assert error.error_type == "InvokeAuthorizationError"


def test_a_rejected_signature_fails_provider_validation_with_the_string_to_sign(stack: Stack) -> None:
    error = _reject_hmac(stack, "validate_provider_credentials")
    assert error.error_type == "CredentialsValidateFailedError"


WRONG_FIELD = {"api_key": "api_key", "jwt": "jwt_consumer_id", "hmac": "hmac_secret_key"}


@pytest.mark.parametrize("method_id", ["key-query", "jwt-rs256", "hmac-sha1"])  # one set-up per scheme
def test_rejected_credentials_reach_dify_as_authorization_errors(stack: Stack, method_id: str) -> None:
    method = auth_methods()[method_id]
    wrong = f"nobody-{secrets.token_hex(8)}"
    stack.tried_secrets.append(wrong)
    received = Received(stack.emulator)
    with pytest.raises(PluginSessionError) as caught:
        _chat(stack, stack.credentials(method, **{WRONG_FIELD[method.kind]: wrong}), "mkwrong", 0)
    assert caught.value.error_type == "InvokeAuthorizationError"
    [rejected] = received.all
    for leaked in (*credential_values(rejected, access_key=False), *all_secrets()):
        assert leaked not in _error_text(caught.value)


# ---------------------------------------------------------------------------------------------
# Secrets in logs (last: it searches everything the module's plugin process emitted)
# ---------------------------------------------------------------------------------------------


def test_no_key_token_secret_or_signature_in_logs_stderr_or_errors(stack: Stack) -> None:
    # Enough traffic of every kind even when this test runs alone: each method once, and a rejection.
    for index, method_id in enumerate(METHOD_IDS):
        _chat(stack, stack.credentials(auth_methods()[method_id]), "mklogs", index)
    _reject_hmac(stack, "invoke_llm-stream")

    sent = [value for r in stack.emulator.received for value in credential_values(r, access_key=False)]
    assert any(v.startswith("eyJ") for v in sent) and any(
        r.headers.get("x-ca-signature") for r in stack.emulator.received
    )
    forbidden = {*all_secrets(), *stack.tried_secrets, *sent}
    plugin = stack.plugin
    emitted = {
        "logs": json.dumps(plugin.logs, ensure_ascii=False),
        "stderr": plugin.stderr_text(),
        "non-JSON stdout": "\n".join(plugin.non_json_lines),
        "plugin errors": json.dumps(plugin.plugin_errors, ensure_ascii=False),
        "session errors": "\n".join(_error_text(e) for e in stack.errors),
    }
    assert stack.errors, "the module's errors were collected"
    for where, text in emitted.items():
        assert "eyJ" not in text, f"a JWT in the plugin's {where}"
        leaked = [value[:12] + "…" for value in forbidden if value in text]
        assert not leaked, f"credentials in the plugin's {where}: {leaked}"
