"""The stdio floor of make bench: a do-nothing Dify SDK model plugin (canned answers, no HTTP, no LiteLLM).

Driven over stdio exactly like the plugin, it shows what the SDK itself costs before the plugin
does anything: start-up, a one-chunk answer, a canned stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.stdio_driver import prompt_message

FLOOR_FILES = {
    "manifest.yaml": """\
version: 0.0.1
type: plugin
author: bench
name: floor
label: {en_US: Floor}
description: {en_US: The stdio floor - a do-nothing model plugin}
icon: icon.svg
created_at: "2026-01-01T00:00:00Z"
resource: {memory: 268435456}
plugins: {models: [provider/floor.yaml]}
meta:
  version: 0.0.1
  arch: [amd64, arm64]
  runner: {language: python, version: "3.12", entrypoint: main}
""",
    "main.py": """\
from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv())

if __name__ == "__main__":
    plugin.run()
""",
    "_assets/icon.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"/>\n',
    "provider/floor.yaml": """\
provider: floor
label: {en_US: Floor}
icon_small: {en_US: icon.svg}
supported_model_types: [llm]
configurate_methods: [predefined-model]
models:
  llm:
    predefined: ["models/llm/*.yaml"]
extra:
  python:
    provider_source: provider/floor.py
    model_sources: [models/llm/llm.py]
""",
    "provider/floor.py": """\
from dify_plugin import ModelProvider


class FloorProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        return None
""",
    "models/__init__.py": "",
    "models/llm/__init__.py": "",
    "models/llm/floor.yaml": """\
model: floor
label: {en_US: Floor}
model_type: llm
features: []
fetch_from: predefined-model
model_properties: {mode: chat, context_size: 4096}
parameter_rules:
  - {name: temperature, use_template: temperature}
""",
    "models/llm/llm.py": '''\
from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta, LLMUsage
from dify_plugin.entities.model.message import AssistantPromptMessage


class FloorLLM(LargeLanguageModel):
    """Answers without doing anything: one canned result, or `chunks` canned stream chunks."""

    def _invoke(self, model, credentials, prompt_messages, model_parameters, tools=None, stop=None,
                stream=True, user=None):
        if not stream:
            return LLMResult(model=model, message=AssistantPromptMessage(content="echo"),
                             usage=LLMUsage.empty_usage())
        return self._stream(model, int(credentials.get("chunks", 1)))

    def _stream(self, model, count):
        for index in range(count):
            last = index == count - 1
            yield LLMResultChunk(model=model, delta=LLMResultChunkDelta(
                index=index, message=AssistantPromptMessage(content=f" tok{index + 1}"),
                usage=LLMUsage.empty_usage() if last else None, finish_reason="stop" if last else None))

    def get_num_tokens(self, model, credentials, prompt_messages, tools=None) -> int:
        return 0

    def validate_credentials(self, model, credentials) -> None:
        return None

    @property
    def _invoke_error_mapping(self):
        return {}
''',
}


def write_floor_plugin(root: Path) -> Path:
    """The floor plugin's files under `root`, ready for `python -m main`."""
    for rel, text in FLOOR_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def floor_chat(chunks: int, *, stream: bool) -> dict[str, Any]:
    """An invoke_llm request of the floor plugin: one canned answer, or `chunks` canned stream chunks."""
    return {
        "provider": "floor",
        "model_type": "llm",
        "model": "floor",
        "credentials": {"chunks": str(chunks)},
        "prompt_messages": [prompt_message("user", "hello from the benchmark")],
        "model_parameters": {"temperature": 0.1},
        "stream": stream,
    }
