"""Dify admins moving over, end to end through `python -m main` over stdio, as the daemon drives it.

The earlier community plugin for this gateway (daxingplay/dify-plugin-ai-gateway 0.0.2, its
provider/ai-gateway.yaml) has one per-model form: endpoint_url, endpoint_model_name, auth_method
(api_key, jwt or hmac), api_key, jwt_jwks, jwt_algorithm, jwt_consumer_id, jwt_expiration,
jwt_issuer, jwt_header_name, jwt_header_prefix, hmac_access_key, hmac_secret_key,
hmac_signature_headers, and for LLMs mode, context_size, max_tokens_to_sample, agent_though_support,
function_calling_type, stream_function_calling, vision_support, structured_output_support,
stream_mode_auth and stream_mode_delimiter. A model of every type with those settings and nothing
else gets a schema, passes validation and answers; fields this plugin does not have are ignored.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PLUGIN_ROOT
from tests.emulator import Consumer, GatewayEmulator, make_wav, serve
from tests.emulator.audio import encode_audio
from tests.stdio_driver import PluginProcess, prompt_message
from tests.test_auth_matrix import transcript

PROVIDER = "aliyun_ai_gateway"
_SECRET = secrets.token_bytes(32)
_OCT = {"kty": "oct", "k": base64.urlsafe_b64encode(_SECRET).rstrip(b"=").decode(), "alg": "HS256"}
_KEY = f"sk-migrated-{secrets.token_hex(6)}"
_AK, _SK = f"ak-{secrets.token_hex(4)}", secrets.token_hex(16)
# The auth part of the earlier plugin's form, as its users filled it in.
AUTH: dict[str, dict[str, str]] = {
    "api_key": {"auth_method": "api_key", "api_key": _KEY},
    "jwt": {
        "auth_method": "jwt",
        "jwt_jwks": json.dumps(_OCT),  # its placeholder: one JWK, not a set
        "jwt_algorithm": "HS256",
        "jwt_consumer_id": "uid-migrated",
        "jwt_expiration": "7200",
        "jwt_header_name": "Authorization",
        "jwt_header_prefix": "Bearer",
    },
    "hmac": {"auth_method": "hmac", "hmac_access_key": _AK, "hmac_secret_key": _SK, "hmac_signature_headers": ""},
}
LLM_TOGGLES = {
    "mode": "chat",
    "context_size": "4096",
    "max_tokens_to_sample": "4096",
    "agent_though_support": "not_supported",
    "function_calling_type": "tool_call",
    "stream_function_calling": "not_supported",
    "vision_support": "no_support",
    "structured_output_support": "not_supported",
    "stream_mode_auth": "not_use",
    "stream_mode_delimiter": "\\n\\n",
}
ROUTES = {
    "llm": "/v1/chat/completions",
    "text-embedding": "/v1/embeddings",
    "rerank": "/v1/rerank",
    "speech2text": "/v1/audio/transcriptions",
    "tts": "/v1/audio/speech",
}


class Stack:
    def __init__(self, plugin: PluginProcess, emulator: GatewayEmulator, base_url: str) -> None:
        self.plugin, self.emulator, self.base_url = plugin, emulator, base_url

    def request(self, action: str, model_type: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        return self.plugin.request(action, {"provider": PROVIDER, "model_type": model_type, **data}, timeout=30)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    consumer = Consumer(
        name="migrated",
        api_key=_KEY,
        jwt_jwks={"keys": [_OCT]},
        jwt_claim_value="uid-migrated",
        hmac_access_key=_AK,
        hmac_secret_key=_SK,
    )
    emulator = GatewayEmulator(consumers=[consumer])
    with serve(emulator) as base_url, PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        yield Stack(plugin, emulator, base_url)


def earlier_form(stack: Stack, model_type: str, auth: str) -> dict[str, str]:
    fields = {"endpoint_url": f"{stack.base_url}/v1", "endpoint_model_name": f"gw-{model_type}", **AUTH[auth]}
    return fields | LLM_TOGGLES if model_type == "llm" else fields


def _invoke(stack: Stack, model_type: str, model: str, credentials: dict[str, str]) -> None:
    match model_type:
        case "llm":
            items = stack.request(
                "invoke_llm",
                model_type,
                {
                    "model": model,
                    "credentials": credentials,
                    "prompt_messages": [prompt_message("user", "hello there")],
                    "model_parameters": {},
                    "stream": True,
                },
            )
            assert "".join(i["delta"]["message"]["content"] or "" for i in items) == "echo: hello there"
        case "text-embedding":
            result = stack.request(
                "invoke_text_embedding", model_type, {"model": model, "credentials": credentials, "texts": ["a b"]}
            )
            assert len(result[-1]["embeddings"]) == 1
        case "rerank":
            data = {"model": model, "credentials": credentials, "query": "red apple", "docs": ["apple", "car"]}
            assert [d["index"] for d in stack.request("invoke_rerank", model_type, data)[-1]["docs"]] == [0, 1]
        case "speech2text":
            audio = make_wav(b"some speech")
            data = {"model": model, "credentials": credentials, "file": audio}
            assert stack.request("invoke_speech2text", model_type, data)[-1]["result"] == transcript(audio)
        case "tts":
            data = {"model": model, "credentials": credentials, "content_text": "Hi.", "voice": "", "tenant_id": "t"}
            audio = b"".join(bytes.fromhex(i["result"]) for i in stack.request("invoke_tts", model_type, data))
            assert audio == encode_audio("Hi.", "mp3")[1]


@pytest.mark.parametrize("auth", AUTH)
@pytest.mark.parametrize("model_type", ROUTES)
def test_a_model_set_up_as_in_the_earlier_plugin_works(stack: Stack, model_type: str, auth: str) -> None:
    credentials = earlier_form(stack, model_type, auth)
    model = f"migrated-{model_type}"
    schema = stack.request("get_ai_model_schemas", model_type, {"model": model, "credentials": credentials})[-1][
        "model_schema"
    ]
    assert schema["model"] == model and schema["fetch_from"] == "customizable-model"
    result = stack.request("validate_model_credentials", model_type, {"model": model, "credentials": credentials})
    assert result[-1]["result"] is True
    stack.emulator.clear()
    _invoke(stack, model_type, model, credentials)
    received = stack.emulator.received[-1]
    assert received.path == ROUTES[model_type]
    sent = received.multipart()["model"] if model_type == "speech2text" else received.json()["model"]
    assert sent == f"gw-{model_type}"


def test_a_text_to_speech_model_without_voices_offers_the_routes_voices(stack: Stack) -> None:
    credentials = earlier_form(stack, "tts", "api_key")
    schema = stack.request("get_ai_model_schemas", "tts", {"model": "migrated-tts", "credentials": credentials})[-1][
        "model_schema"
    ]
    voices = [v["mode"] for v in schema["model_properties"]["voices"]]
    assert voices[:2] == ["alloy", "ash"] and "shimmer" in voices
    assert schema["model_properties"]["default_voice"] == "alloy"
    listed = stack.request(
        "get_tts_model_voices", "tts", {"model": "migrated-tts", "credentials": credentials, "language": "zh-Hans"}
    )[-1]["voices"]
    assert [v["value"] for v in listed] == voices  # offered whatever the app's language


def test_a_model_added_under_a_catalog_name_goes_where_its_own_form_says(stack: Stack) -> None:
    # text-embedding-v4 is in the catalog on the DashScope native route; this gateway serves /v1/embeddings.
    credentials = {"endpoint_url": f"{stack.base_url}/v1", **AUTH["api_key"], "route_preset": "default"}
    stack.emulator.clear()
    result = stack.request(
        "invoke_text_embedding",
        "text-embedding",
        {"model": "text-embedding-v4", "credentials": credentials, "texts": ["x"]},
    )
    assert len(result[-1]["embeddings"]) == 1
    assert [r.path for r in stack.emulator.received] == ["/v1/embeddings"]
    schema = stack.request(
        "get_ai_model_schemas", "text-embedding", {"model": "text-embedding-v4", "credentials": credentials}
    )[-1]["model_schema"]
    assert schema["fetch_from"] == "customizable-model" and schema.get("pricing") is None


def test_a_stream_only_model_added_by_name_is_streamed_and_collected(stack: Stack) -> None:
    credentials = earlier_form(stack, "llm", "api_key") | {"stream_function_calling": "stream_only"}
    stack.emulator.clear()
    result = stack.request("validate_model_credentials", "llm", {"model": "qwen3-8b", "credentials": credentials})
    assert result[-1]["result"] is True and stack.emulator.received[-1].json()["stream"] is True
    items = stack.request(
        "invoke_llm",
        "llm",
        {
            "model": "qwen3-8b",
            "credentials": credentials,
            "prompt_messages": [prompt_message("user", "is seven prime")],
            "model_parameters": {},
            "stream": False,
        },
    )
    assert len(items) == 1 and items[0]["delta"]["message"]["content"] == "echo: is seven prime"
    assert stack.emulator.received[-1].json()["stream"] is True
