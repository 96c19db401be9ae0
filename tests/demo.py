"""`make demo`: the plugin as Dify runs it (over stdio), against the embedded gateway emulator.

It walks through every model type and every consumer authentication method and prints what a Dify
user would see: a streamed answer, a tool call, a reasoning model, embeddings, a rerank ranking, a
transcript, a synthesised audio file, then the same chat call signed as a JWT and as an HMAC
consumer.

Set AIGW_LIVE_ENDPOINT to run the same walk-through against a real AI Gateway instead: a smoke test
before installing the plugin in Dify. Only what is configured runs there:

    AIGW_LIVE_API_KEY (+ AIGW_LIVE_API_KEY_HEADER)           the API-key consumer
    AIGW_LIVE_JWT_JWKS + AIGW_LIVE_JWT_CONSUMER_ID            a JWT consumer
        (+ AIGW_LIVE_JWT_ALGORITHM, default HS256; AIGW_LIVE_JWT_CLAIM, default uid)
    AIGW_LIVE_HMAC_ACCESS_KEY + AIGW_LIVE_HMAC_SECRET_KEY     an HMAC consumer
    AIGW_LIVE_MODEL (default qwen-plus), AIGW_LIVE_REASONING_MODEL, AIGW_LIVE_EMBEDDING_MODEL,
    AIGW_LIVE_RERANK_MODEL, AIGW_LIVE_STT_MODEL, AIGW_LIVE_TTS_MODEL (+ AIGW_LIVE_TTS_VOICE)

The synthesised audio goes to AIGW_DEMO_OUT (default: <system temp dir>/aigw-demo/).
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

# gevent patching (on import) must come before the emulator's threads start.
import dify_plugin  # noqa: F401

from tests.conftest import PLUGIN_ROOT, TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, make_wav, serve
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data

PROVIDER = "aliyun_ai_gateway"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}

# The emulator's consumers: one per authentication method, as the gateway console would set them up.
_JWT_SECRET = b"demo-jwt-secret-32-bytes-long!!!"
_JWT_KEY = {
    "kty": "oct",
    "kid": "demo",
    "alg": "HS256",
    "k": base64.urlsafe_b64encode(_JWT_SECRET).decode().rstrip("="),
}
_EMULATOR_CONSUMERS = (
    Consumer(name="demo-key", api_key=TEST_KEY),
    Consumer(name="demo-jwt", jwt_jwks={"keys": [_JWT_KEY]}, jwt_claim_value="demo-uid"),
    Consumer(name="demo-hmac", hmac_access_key="demo-ak", hmac_secret_key="demo-sk"),
)
_EMULATOR_MODELS = {
    "chat": "qwen-plus",
    "reasoning": "qwq-plus",
    "embedding": "text-embedding-v4",
    "rerank": "gte-rerank-v2",
    "stt": "whisper-large-v3",
    "tts": "tts-1",
}


def _say(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


@dataclass
class Target:
    """Where the demo points: endpoint, the configured consumers and the model per section."""

    description: str
    endpoint_url: str
    auth: dict[str, dict[str, str]]  # auth method → its credential fields
    models: dict[str, str]  # section → model; a missing section is skipped
    tts_voice: str = "alloy"
    consumer_seen: Callable[[], str | None] = lambda: None
    failures: list[str] = field(default_factory=list)

    def credentials(self, method: str | None = None) -> dict[str, str]:
        method = method or next(iter(self.auth))
        return {"endpoint_url": self.endpoint_url, **self.auth[method]}


def _live_target(endpoint: str) -> Target:
    env = os.environ.get
    auth: dict[str, dict[str, str]] = {}
    if key := env("AIGW_LIVE_API_KEY"):
        auth["api_key"] = {
            "auth_method": "api_key",
            "api_key": key,
            "api_key_header": env("AIGW_LIVE_API_KEY_HEADER", ""),
        }
    if (jwks := env("AIGW_LIVE_JWT_JWKS")) and (consumer := env("AIGW_LIVE_JWT_CONSUMER_ID")):
        auth["jwt"] = {
            "auth_method": "jwt",
            "jwt_jwks": jwks,
            "jwt_consumer_id": consumer,
            "jwt_algorithm": env("AIGW_LIVE_JWT_ALGORITHM", "HS256"),
            "jwt_consumer_claim": env("AIGW_LIVE_JWT_CLAIM", "uid"),
        }
    if (ak := env("AIGW_LIVE_HMAC_ACCESS_KEY")) and (sk := env("AIGW_LIVE_HMAC_SECRET_KEY")):
        auth["hmac"] = {"auth_method": "hmac", "hmac_access_key": ak, "hmac_secret_key": sk}
    variables = {
        "reasoning": "AIGW_LIVE_REASONING_MODEL",
        "embedding": "AIGW_LIVE_EMBEDDING_MODEL",
        "rerank": "AIGW_LIVE_RERANK_MODEL",
        "stt": "AIGW_LIVE_STT_MODEL",
        "tts": "AIGW_LIVE_TTS_MODEL",
    }
    models = {"chat": env("AIGW_LIVE_MODEL", "qwen-plus")}
    models |= {section: value for section, name in variables.items() if (value := env(name))}
    return Target(
        description=f"the AI Gateway at {endpoint} (consumers configured: {', '.join(auth) or 'none'})",
        endpoint_url=endpoint,
        auth=auth,
        models=models,
        tts_voice=env("AIGW_LIVE_TTS_VOICE", "alloy"),
    )


def _emulator_target(stack: ExitStack) -> Target:
    emulator = GatewayEmulator(consumers=_EMULATOR_CONSUMERS, embedding_dim=1024)
    base_url = stack.enter_context(serve(emulator))
    return Target(
        description=f"the embedded gateway emulator at {base_url} (consumers demo-key, demo-jwt, demo-hmac)",
        endpoint_url=f"{base_url}/v1",
        auth={
            "api_key": {"auth_method": "api_key", "api_key": TEST_KEY},
            "jwt": {
                "auth_method": "jwt",
                "jwt_jwks": json.dumps({"keys": [_JWT_KEY]}),
                "jwt_algorithm": "HS256",
                "jwt_consumer_id": "demo-uid",
            },
            "hmac": {"auth_method": "hmac", "hmac_access_key": "demo-ak", "hmac_secret_key": "demo-sk"},
        },
        models=dict(_EMULATOR_MODELS),
        consumer_seen=lambda: emulator.received[-1].consumer if emulator.received else None,
    )


@contextmanager
def _section(target: Target, title: str, model_key: str | None = None) -> Iterator[str | None]:
    """A titled step; a session error is printed and counted, so the remaining steps still run."""
    _say(f"\n== {title} ==")
    model = target.models.get(model_key) if model_key else None
    try:
        yield model
    except PluginSessionError as exc:
        target.failures.append(title)
        _say(f"  FAILED: {exc.error_type}: {exc.description or exc.message}")


def _skip(variable: str) -> None:
    _say(f"  (skipped: set {variable} to run this step against the live gateway)")


def _chat(plugin: PluginProcess, credentials: dict, model: str, text: str, **extra: Any) -> None:
    data = chat_data(PROVIDER, model, credentials, text, model_parameters={"max_tokens": 300}, **extra)
    usage = None
    _say("  ", end="")
    for item in plugin.stream("invoke_llm", data):
        delta = item["delta"]
        _say((delta["message"]["content"] or "").replace("\n", "\n  "), end="")
        for call in delta["message"]["tool_calls"]:
            _say(f"→ tool call {call['function']['name']}({call['function']['arguments']})", end="")
        usage = delta.get("usage") or usage
    if usage:
        _say(f"\n  [{usage['prompt_tokens']} + {usage['completion_tokens']} tokens, ", end="")
        _say(f"{_price(usage['total_price'])} {usage['currency']}]")
    else:
        _say()


def _price(value: str | float) -> str:
    return format(Decimal(str(value)), "f")


def _sine_wav(seconds: float = 0.5, hertz: float = 440.0, rate: int = 16000) -> bytes:
    """A short 16-bit mono tone, so the demo needs no audio file on disk."""
    samples = (int(12000 * math.sin(2 * math.pi * hertz * i / rate)) for i in range(int(seconds * rate)))
    return make_wav(b"".join(struct.pack("<h", s) for s in samples))


def _audio_out() -> Path:
    folder = Path(os.environ.get("AIGW_DEMO_OUT") or Path(tempfile.gettempdir()) / "aigw-demo")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _walk_through(plugin: PluginProcess, target: Target) -> None:
    credentials = target.credentials()
    chat_model = target.models["chat"]

    with _section(target, f"Checking the credentials (one real call to {chat_model})"):
        plugin.request(
            "validate_provider_credentials",
            {"provider": PROVIDER, "credentials": {**credentials, "validate_model": chat_model}},
        )
        _say("  credentials accepted")

    with _section(target, f"LLM: streamed chat with {chat_model}"):
        _chat(plugin, credentials, chat_model, "Introduce Alibaba Cloud AI Gateway in one sentence.")

    with _section(target, "LLM: tool call (assembled from streamed fragments)"):
        _chat(plugin, credentials, chat_model, "What is the weather in Hangzhou?", tools=[WEATHER])

    with _section(target, "LLM: reasoning model (thinking shown in <think>)", "reasoning") as model:
        if model:
            _chat(plugin, credentials, model, "Is 91 a prime number?")
        else:
            _skip("AIGW_LIVE_REASONING_MODEL")

    with _section(target, "Text embedding", "embedding") as model:
        if model:
            texts = ["AI Gateway routes model traffic", "网关统一管理大模型调用"]
            result = plugin.request(
                "invoke_text_embedding",
                {"provider": PROVIDER, "model": model, "credentials": credentials, "texts": texts},
            )[-1]
            for text, vector in zip(texts, result["embeddings"], strict=True):
                first = ", ".join(f"{v:+.4f}" for v in vector[:4])
                _say(f"  {text!r}: {len(vector)} dimensions, first values [{first}, ...]")
            usage = result["usage"]
            _say(f"  [{usage['tokens']} tokens, {_price(usage['total_price'])} {usage['currency']}]")
        else:
            _skip("AIGW_LIVE_EMBEDDING_MODEL")

    with _section(target, "Rerank", "rerank") as model:
        if model:
            query = "what does an AI gateway do"
            docs = [
                "Bananas are rich in potassium.",
                "An AI gateway routes, secures and meters model calls.",
                "A toll gateway collects fees on a highway.",
            ]
            data = {"provider": PROVIDER, "model": model, "credentials": credentials, "query": query, "docs": docs}
            result = plugin.request("invoke_rerank", data)[-1]
            _say(f"  query: {query!r}")
            for rank, doc in enumerate(result["docs"], 1):
                _say(f"  {rank}. {doc['score']:.3f}  {doc['text']}")
        else:
            _skip("AIGW_LIVE_RERANK_MODEL")

    with _section(target, "Speech to text (a 0.5 s tone generated in code)", "stt") as model:
        if model:
            data = {"provider": PROVIDER, "model": model, "credentials": credentials, "file": _sine_wav()}
            _say(f"  transcript: {plugin.request('invoke_speech2text', data)[-1]['result']!r}")
        else:
            _skip("AIGW_LIVE_STT_MODEL")

    with _section(target, "Text to speech", "tts") as model:
        if model:
            data = {
                "provider": PROVIDER,
                "model": model,
                "credentials": credentials,
                "content_text": "Hello from Alibaba Cloud AI Gateway.",
                "voice": target.tts_voice,
                "tenant_id": "demo",
            }
            audio = b"".join(bytes.fromhex(item["result"]) for item in plugin.request("invoke_tts", data))
            path = _audio_out() / f"speech.{'wav' if audio[:4] == b'RIFF' else 'mp3'}"
            path.write_bytes(audio)
            _say(f"  {len(audio)} bytes of audio written to {path}")
        else:
            _skip("AIGW_LIVE_TTS_MODEL")

    for method, title in (("api_key", "an API-key"), ("jwt", "a JWT"), ("hmac", "an HMAC")):
        with _section(target, f"The same chat as {title} consumer"):
            if method not in target.auth:
                _say("  (skipped: this consumer is not configured; see the module docstring)")
                continue
            _chat(plugin, target.credentials(method), chat_model, "Which consumer am I?")
            if consumer := target.consumer_seen():
                _say(f"  the gateway authenticated consumer {consumer!r}")

    _say("\n== A rejected consumer key ==")
    rejected = {"endpoint_url": target.endpoint_url, "api_key": "sk-unknown", "max_retries": "0"}
    result = plugin.collect("invoke_llm", chat_data(PROVIDER, chat_model, rejected, "hi"))
    error = result.error
    _say(f"  {error.error_type}: {error.description or error.message}" if error else "  (no error?)")
    if error is None or error.error_type != "InvokeAuthorizationError":
        target.failures.append("A rejected consumer key")


def main() -> int:
    with ExitStack() as stack:
        live = os.environ.get("AIGW_LIVE_ENDPOINT")
        target = _live_target(live) if live else _emulator_target(stack)
        _say(f"Target: {target.description}")
        if not target.auth:
            _say(
                "No consumer configured: set AIGW_LIVE_API_KEY, the AIGW_LIVE_JWT_* or the AIGW_LIVE_HMAC_* variables."
            )
            return 2
        plugin = stack.enter_context(PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}))
        _say(f"Plugin started over stdio; first heartbeat after {plugin.startup_seconds_to_heartbeat:.2f} s.")
        _walk_through(plugin, target)
    if target.failures:
        _say("\n" + json.dumps({"demo": "failed", "steps": target.failures}, ensure_ascii=False))
        return 1
    _say("\n" + json.dumps({"demo": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
