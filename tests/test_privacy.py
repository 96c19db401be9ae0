"""The promises of PRIVACY.md, checked on the running plugin.

- It connects to the configured gateway and nothing else (no cost map, telemetry or tokenizer fetch).
- Its logs and stderr carry no prompt, answer or credential.
- LiteLLM reads no .env file and cannot be switched to verbose logging from the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PLUGIN_ROOT, TEST_KEY, Gateway
from tests.stdio_driver import PluginProcess, chat_data, prompt_message

PROVIDER = "aliyun_ai_gateway"
PROMPT = "zebra umbrella 4471 private question"

# Runs the plugin's real entry point under a PEP 578 audit hook that records every outbound
# connection and name lookup the process makes, including LiteLLM's import and first calls.
_AUDITED_MAIN = textwrap.dedent(
    """
    import json, os, runpy, sys

    _log = open(os.environ["AUDIT_LOG"], "a", buffering=1)

    def _hook(event, args):
        if event == "socket.connect" and isinstance(args[1], tuple):
            _log.write(json.dumps({"connect": list(args[1][:2])}) + "\\n")
        elif event == "socket.getaddrinfo":
            _log.write(json.dumps({"lookup": str(args[0])}) + "\\n")

    sys.addaudithook(_hook)
    runpy.run_module("main", run_name="__main__")
    """
)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PluginProcess, Path]]:
    folder = tmp_path_factory.mktemp("audit")
    (folder / "audited_main.py").write_text(_AUDITED_MAIN, encoding="utf-8")
    log = folder / "audit.jsonl"
    env = {
        "INSTALL_METHOD": "local",
        "AUDIT_LOG": str(log),
        "PYTHONPATH": f"{folder}{os.pathsep}{PLUGIN_ROOT}",
        # Switches that would make a careless LiteLLM set-up log prompts, if it honoured them.
        "LITELLM_LOG": "DEBUG",
        "LITELLM_MODE": "DEV",
    }
    with PluginProcess.start(PLUGIN_ROOT, env=env, entrypoint="audited_main") as process:
        yield process, log


def _exercise(plugin: PluginProcess, gateway: Gateway) -> list:
    credentials = gateway.credentials(validate_model="qwen-max")
    plugin.request("validate_provider_credentials", {"provider": PROVIDER, "credentials": credentials})
    answers = []
    for stream in (False, True):
        answers += plugin.request("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, PROMPT, stream=stream))
    plugin.request(
        "get_llm_num_tokens",
        {
            "provider": PROVIDER,
            "model_type": "llm",
            "model": "qwen-plus",
            "credentials": credentials,
            "prompt_messages": [prompt_message("user", PROMPT)],
        },
    )
    return answers


def test_the_plugin_connects_to_the_gateway_and_nothing_else(
    audited: tuple[PluginProcess, Path], gateway: Gateway
) -> None:
    plugin, log = audited
    _exercise(plugin, gateway)
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    port = int(gateway.base_url.rsplit(":", 1)[1])
    connects = [tuple(e["connect"]) for e in events if "connect" in e]
    assert connects, "the audit hook saw the gateway connection"
    assert set(connects) == {("127.0.0.1", port)}
    assert {e["lookup"] for e in events if "lookup" in e} <= {"127.0.0.1"}


def test_logs_and_stderr_hold_no_prompt_answer_or_key(audited: tuple[PluginProcess, Path], gateway: Gateway) -> None:
    plugin, _ = audited
    answers = _exercise(plugin, gateway)
    answer = "".join(item["delta"]["message"]["content"] for item in answers)
    assert PROMPT in answer, "the emulator echoed the prompt, so the answer is recognisable"
    emitted = json.dumps(plugin.logs) + plugin.stderr_text() + "".join(plugin.non_json_lines)
    for secret in (TEST_KEY, PROMPT, "zebra"):
        assert secret not in emitted


def test_litellm_loads_no_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FOO_FROM_DOTENV=leaked\nLITELLM_LOG=DEBUG\n", encoding="utf-8")
    probe = (
        "import adapters.engine.litellm_facade as e; e.litellm(); import os; print(os.environ.get('FOO_FROM_DOTENV'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PLUGIN_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "None"
    assert "LiteLLM" not in done.stderr
