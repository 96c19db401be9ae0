"""Adding a gateway model is a YAML-only change: one catalog entry, `make generate`, and it is served.

The entry is the README's worked example, pasted as is at the end of the LLM catalog of a copy of
the plugin: if the example stops being valid YAML for the catalog, this fails. A reader who followed
the README has pasted it into the checkout already, and `make test` must still pass there: the copy
then holds it once, as pasted, and is checked the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dify_plugin.entities.model.provider import ModelProviderConfiguration

from tests.conftest import PLUGIN_ROOT, Gateway
from tests.stdio_driver import PluginProcess, prompt_message

README = PLUGIN_ROOT / "README.md"
_EXAMPLE = re.compile(r"Append to `provider_configs/models/llm.yaml`:\n\n```yaml\n(.*?)```", re.S)


def readme_example() -> str:
    """The README's worked example, exactly as a reader would paste it."""
    found = _EXAMPLE.search(README.read_text(encoding="utf-8"))
    assert found, "README.md has no worked example to append to provider_configs/models/llm.yaml"
    return found.group(1)


def _copy_plugin(target: Path) -> Path:
    ignore = shutil.ignore_patterns(".venv", ".git", "tests", "__pycache__", "dist", "*.difypkg", ".ruff_cache")
    shutil.copytree(PLUGIN_ROOT, target, ignore=ignore)
    return target


def paste_once(catalog_file: Path) -> None:
    """Append the README's example to `catalog_file` unless a reader already pasted it there."""
    if readme_example() not in catalog_file.read_text(encoding="utf-8"):
        with catalog_file.open("a", encoding="utf-8") as catalog:
            catalog.write(readme_example())


@pytest.mark.parametrize("pasted_in_the_checkout", [False, True], ids=["fresh-checkout", "example-already-pasted"])
def test_a_new_catalog_entry_is_listed_served_and_routed(
    tmp_path: Path, gateway: Gateway, monkeypatch: pytest.MonkeyPatch, pasted_in_the_checkout: bool
) -> None:
    plugin_dir = _copy_plugin(tmp_path / "plugin")
    catalog_file = plugin_dir / "provider_configs" / "models" / "llm.yaml"
    if pasted_in_the_checkout:  # as the README tells its reader, before `make generate && make test`
        paste_once(catalog_file)
    paste_once(catalog_file)
    assert catalog_file.read_text(encoding="utf-8").count("model_name: team-llama-70b") == 1

    # `make generate`, then `make check`'s catalog step, in the copy; no Python file changes.
    for extra in ([], ["--check"]):
        subprocess.run(
            [sys.executable, "-m", "adapters.catalog.generator", "--root", str(plugin_dir), *extra],
            cwd=plugin_dir,
            check=True,
            timeout=120,
        )
    assert "| team-llama-70b | llm | openai-chat | meta-llama/Llama-3.3-70B-Instruct | 65,536 |" in (
        plugin_dir / "README.md"
    ).read_text(encoding="utf-8")

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
