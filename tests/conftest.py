"""Shared fixtures: the gateway emulator on loopback, credentials for it, and a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# dify_plugin applies gevent's monkey-patching on import; it must happen before any test starts a
# thread (the emulator's server), or the import machinery's locks end up half-patched.
import dify_plugin  # noqa: F401
import pytest

from tests.emulator import Consumer, GatewayEmulator, serve
from tests.stdio_driver import daemon_rule_violations

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "sk-test-a"
OTHER_KEY = "sk-test-b"

# Variables that would change how the plugin connects; each test starts without them.
_ENV_TO_CLEAR = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "MAX_REQUEST_TIMEOUT",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def daemon_rules() -> Iterator[None]:
    """Every plugin process a test ran is held to what the daemon enforces (tests/stdio_driver.py):
    no stdout line over 5 MiB, and heartbeats never late by more than their interval once in service."""
    yield
    if problems := daemon_rule_violations():
        pytest.fail("\n".join(problems), pytrace=False)


@dataclass
class Gateway:
    emulator: GatewayEmulator
    base_url: str

    def credentials(self, base_path: str = "", **fields: str) -> dict[str, str]:
        """Provider credentials for the emulator; `base_path` goes in front of /v1 (e.g. /_fault/status-429).

        Retries are off unless a test asks for them, so fault tests see exactly one attempt.
        """
        return {"endpoint_url": f"{self.base_url}{base_path}/v1", "api_key": TEST_KEY, "max_retries": "0", **fields}

    def last_json(self) -> dict:
        return self.emulator.received[-1].json()


@pytest.fixture(scope="session")
def _emulator() -> Iterator[tuple[GatewayEmulator, str]]:
    emulator = GatewayEmulator(
        consumers=[Consumer(name="team-a", api_key=TEST_KEY), Consumer(name="team-b", api_key=OTHER_KEY)]
    )
    with serve(emulator) as base_url:
        yield emulator, base_url


@pytest.fixture
def gateway(_emulator: tuple[GatewayEmulator, str]) -> Gateway:
    emulator, base_url = _emulator
    emulator.clear()
    return Gateway(emulator, base_url)


def client_sockets_to(port: int) -> int:
    """This process's open TCP sockets whose remote end is `port` (the emulator's server sockets excluded)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in open("/proc/self/net/tcp").read().splitlines()[1:]:  # noqa: SIM115
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        count += remote_port == port and fields[9] in inodes
    return count


def run_python_in(plugin_dir: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`python <args>` in a plugin folder as the daemon starts it: local install, a bare PATH, no stdin."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=plugin_dir,
        env={"INSTALL_METHOD": "local", "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def adapter(model_type: str):
    """A fresh adapter object for a model type, built the way the SDK builds one per request."""
    from adapters.models.base import _catalog_entities
    from adapters.models.llm.llm import AIGatewayLargeLanguageModel
    from adapters.models.rerank.rerank import AIGatewayRerankModel
    from adapters.models.speech2text.speech2text import AIGatewaySpeech2TextModel
    from adapters.models.text_embedding.text_embedding import AIGatewayTextEmbeddingModel
    from adapters.models.tts.tts import AIGatewayText2SpeechModel

    classes = {
        "llm": AIGatewayLargeLanguageModel,
        "text-embedding": AIGatewayTextEmbeddingModel,
        "rerank": AIGatewayRerankModel,
        "speech2text": AIGatewaySpeech2TextModel,
        "tts": AIGatewayText2SpeechModel,
    }
    return classes[model_type](list(_catalog_entities(model_type)))


@pytest.fixture
def llm():
    return adapter("llm")
