"""Adding a gateway model is a YAML-only change: one catalog entry, `make generate`, and it is served."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dify_plugin.entities.model.provider import ModelProviderConfiguration

from tests.conftest import PLUGIN_ROOT, Gateway
from tests.stdio_driver import PluginProcess, prompt_message

NEW_MODEL = {
    "model_name": "team-llama-70b",
    "label": {"en_US": "Team Llama 70B"},
    "route": "openai-chat",
    "gateway_model": "meta-llama/Llama-3.3-70B-Instruct",
    "model_info": {
        "mode": "chat",
        "context_size": 65536,
        "max_output_tokens": 4096,
        "supports_function_calling": True,
        "input_cost_per_token": "0.000001",
        "output_cost_per_token": "0.000002",
        "currency": "USD",
    },
}


def _copy_plugin(target: Path) -> Path:
    ignore = shutil.ignore_patterns(".venv", ".git", "tests", "__pycache__", "dist", "*.difypkg", ".ruff_cache")
    shutil.copytree(PLUGIN_ROOT, target, ignore=ignore)
    return target


def test_a_new_catalog_entry_is_listed_served_and_routed(
    tmp_path: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_dir = _copy_plugin(tmp_path / "plugin")
    catalog_file = plugin_dir / "provider_configs" / "models" / "llm.yaml"
    catalog = yaml.safe_load(catalog_file.read_text(encoding="utf-8"))
    catalog["models"].append(NEW_MODEL)
    catalog_file.write_text(yaml.safe_dump(catalog, allow_unicode=True, sort_keys=False), encoding="utf-8")

    # `make generate` in the copy; no Python file changes.
    subprocess.run(
        [sys.executable, "-m", "adapters.catalog.generator", "--root", str(plugin_dir)],
        cwd=plugin_dir,
        check=True,
        timeout=120,
    )

    # Listed: the provider YAML Dify reads from the package now declares it.
    document = yaml.safe_load((plugin_dir / "provider_configs/dify/provider.yaml").read_text(encoding="utf-8"))
    with monkeypatch.context() as inside:
        inside.chdir(plugin_dir)  # the SDK resolves model globs from the plugin directory
        provider = ModelProviderConfiguration(**document)
    assert "team-llama-70b" in {m.model for m in provider.models}

    env = {"INSTALL_METHOD": "local", "PYTHONPATH": ""}
    with PluginProcess.start(plugin_dir, env=env) as plugin:
        credentials = gateway.credentials()
        base = {
            "provider": "aliyun_ai_gateway",
            "model_type": "llm",
            "model": "team-llama-70b",
            "credentials": credentials,
        }
        # Its schema is served, with what the YAML said.
        schema = plugin.request("get_ai_model_schemas", base)[-1]["model_schema"]
        assert schema["model_properties"]["context_size"] == 65536
        assert "tool-call" in schema["features"]
        max_tokens = next(rule for rule in schema["parameter_rules"] if rule["name"] == "max_tokens")
        assert max_tokens["max"] == 4096
        # An invocation reaches its route with its gateway model name.
        items = plugin.request(
            "invoke_llm",
            {**base, "prompt_messages": [prompt_message("user", "hi llama")], "model_parameters": {}, "stream": False},
        )
    assert items[-1]["delta"]["message"]["content"] == "echo: hi llama"
    received = gateway.emulator.received[-1]
    assert received.path == "/v1/chat/completions"
    assert received.json()["model"] == "meta-llama/Llama-3.3-70B-Instruct"
