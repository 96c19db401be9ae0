"""`make demo`: the plugin as Dify runs it (over stdio), against the embedded gateway emulator.

Set AIGW_LIVE_ENDPOINT (and AIGW_LIVE_API_KEY, optionally AIGW_LIVE_MODEL) to run the same walk
through against a real AI Gateway instead: a smoke test before installing the plugin in Dify.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from typing import Any

# gevent patching (on import) must come before the emulator's threads start.
import dify_plugin  # noqa: F401

from tests.conftest import PLUGIN_ROOT, TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, serve
from tests.stdio_driver import PluginProcess, prompt_message

PROVIDER = "aliyun_ai_gateway"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


def _say(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _invoke(plugin: PluginProcess, credentials: dict, model: str, text: str, **extra: Any) -> None:
    data = {
        "provider": PROVIDER,
        "model_type": "llm",
        "model": model,
        "credentials": credentials,
        "prompt_messages": [prompt_message("user", text)],
        "model_parameters": {"max_tokens": 300},
        "stream": True,
        **extra,
    }
    usage = None
    for item in plugin.stream("invoke_llm", data):
        delta = item["delta"]
        _say(delta["message"]["content"] or "", end="")
        for call in delta["message"]["tool_calls"]:
            _say(f"\n  → tool call {call['function']['name']}({call['function']['arguments']})", end="")
        usage = delta.get("usage") or usage
    if usage:
        tokens = f"{usage['prompt_tokens']} + {usage['completion_tokens']} tokens"
        _say(f"\n  [{tokens}, {usage['total_price']} {usage['currency']}]")


def main() -> int:
    live = os.environ.get("AIGW_LIVE_ENDPOINT")
    with ExitStack() as stack:
        if live:
            credentials = {"endpoint_url": live, "api_key": os.environ.get("AIGW_LIVE_API_KEY", "")}
            _say(f"Target: the AI Gateway at {live}")
        else:
            emulator = GatewayEmulator(consumers=[Consumer(name="demo", api_key=TEST_KEY)])
            base_url = stack.enter_context(serve(emulator))
            credentials = {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY}
            _say(f"Target: the embedded gateway emulator at {base_url} (API-key consumer 'demo')")
        model = os.environ.get("AIGW_LIVE_MODEL", "qwen-plus")
        plugin = stack.enter_context(PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}))
        _say(f"Plugin started over stdio; first heartbeat after {plugin.startup_seconds_to_heartbeat:.2f} s.\n")

        _say("== Checking the credentials (one real call) ==")
        plugin.request(
            "validate_provider_credentials",
            {"provider": PROVIDER, "credentials": {**credentials, "validate_model": model}},
        )
        _say("  credentials accepted\n")

        _say(f"== Streamed chat with {model} ==")
        _invoke(plugin, credentials, model, "Introduce Alibaba Cloud AI Gateway in one sentence.")
        _say("\n== Tool call (assembled from streamed fragments) ==")
        _invoke(plugin, credentials, model, "What is the weather in Hangzhou?", tools=[WEATHER])
        _say("\n== Reasoning model (thinking shown in <think>) ==")
        _invoke(plugin, credentials, "qwq-plus", "Is 91 a prime number?")
        _say("\n== A rejected consumer key ==")
        result = plugin.collect(
            "invoke_llm",
            {
                "provider": PROVIDER,
                "model_type": "llm",
                "model": model,
                "credentials": {**credentials, "api_key": "sk-unknown"},
                "prompt_messages": [prompt_message("user", "hi")],
                "model_parameters": {},
                "stream": True,
            },
        )
        error = result.error
        _say(f"  {error.error_type}: {error.description or error.message}" if error else "  (no error?)")
        _say("\n" + json.dumps({"demo": "done"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
