"""What each patch of adapters/runtime/sdk_runtime.py claims: no changed byte, no changed data, the right moment.

The chunk serializer is checked byte for byte against the SDK's own path, on the stdio writer and on
the remote-debug TCP writer; libyaml against PyYAML's pure-Python loader on every YAML file the SDK
reads for this plugin; the LiteLLM start against the heartbeat it must follow.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from dify_plugin.core.server.__base.response_writer import ResponseWriter
from dify_plugin.core.server.stdio.response_writer import StdioResponseWriter
from dify_plugin.core.server.tcp.request_reader import TCPReaderWriter
from dify_plugin.core.utils import yaml_loader
from dify_plugin.entities.model.llm import LLMResultChunk, LLMResultChunkDelta, LLMUsage
from dify_plugin.entities.model.message import AssistantPromptMessage, TextPromptMessageContent

from adapters.runtime import sdk_runtime
from adapters.runtime.sdk_runtime import chunk_message_json
from tests.conftest import PLUGIN_ROOT, run_python_in

ToolCall = AssistantPromptMessage.ToolCall


class _Collect(ResponseWriter):
    """The SDK's own serialization path, writing into a list instead of stdout."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def write(self, data: str) -> None:
        self.out.append(data)

    def done(self) -> None:
        pass


def _chunk(**delta) -> LLMResultChunk:
    return LLMResultChunk(model="qwen-plus", delta=LLMResultChunkDelta(index=3, **delta))


USAGE = LLMUsage(
    prompt_tokens=5,
    prompt_unit_price=Decimal("0.8"),
    prompt_price_unit=Decimal("0.000001"),
    prompt_price=Decimal("0.0000040"),
    completion_tokens=7,
    completion_unit_price=Decimal("2"),
    completion_price_unit=Decimal("0.000001"),
    completion_price=Decimal("0.0000140"),
    total_tokens=12,
    total_price=Decimal("0.0000180"),
    currency="RMB",
    latency=0.25,
)
CHUNKS = [
    _chunk(message=AssistantPromptMessage(content="plain text")),
    _chunk(message=AssistantPromptMessage(content='<think>\n引号 "quotes" \\ \u2028 emoji 🙂\n</think>')),
    # Text chunks (a template writes them): every character JSON escapes, and every other field off its
    # default once, each of which sends the chunk to its own model instead.
    _chunk(message=AssistantPromptMessage(content="\x00\x01\x1f\x7f\t\n\r\b\f </script> \u2029 \ud7ff \ufeff")),
    _chunk(message=AssistantPromptMessage(content="")),
    LLMResultChunk(
        model='模型 "q"', delta=LLMResultChunkDelta(index=10**12, message=AssistantPromptMessage(content="x"))
    ),
    LLMResultChunk(
        model="m",
        system_fingerprint="fp_1",
        delta=LLMResultChunkDelta(index=0, message=AssistantPromptMessage(content="x")),
    ),
    _chunk(message=AssistantPromptMessage(content="x", name="assistant-1")),
    _chunk(message=AssistantPromptMessage(content="x", opaque_body={"k": [1, None]})),
    _chunk(message=AssistantPromptMessage(content="last"), finish_reason="stop"),
    _chunk(message=AssistantPromptMessage(content=[TextPromptMessageContent(data="parts")])),
    _chunk(
        message=AssistantPromptMessage(
            content="",
            tool_calls=[
                ToolCall(
                    id="call_1",
                    type="function",
                    function=ToolCall.ToolCallFunction(name="get_weather", arguments='{"q": "杭州"}'),
                )
            ],
        ),
        usage=USAGE,
        finish_reason="tool_calls",
    ),
]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("session_id", ["6f1c9a2e-0000-4000-8000-000000000001", None])
def test_fast_chunk_message_equals_the_sdks(chunk: LLMResultChunk, session_id: str | None) -> None:
    writer = _Collect()
    writer.session_message(session_id, writer.stream_object(chunk))
    assert writer.out == [chunk_message_json(session_id, chunk), "\n\n"]


@pytest.fixture
def sdk_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's writer classes are restored after the test, whatever it installs on them."""
    for name in ("stream_object", "session_message"):
        monkeypatch.setattr(ResponseWriter, name, getattr(ResponseWriter, name))


def _sdk_bytes(session_id: str, chunk: LLMResultChunk) -> str:
    writer = _Collect()
    writer.session_message(session_id, writer.stream_object(chunk))
    return "".join(writer.out)


def _tcp_writer() -> tuple[TCPReaderWriter, socket.socket]:
    """The SDK's remote-debug writer connected to a listening socket here, as to the daemon's debug port."""
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()
    sigint = signal.getsignal(signal.SIGINT)
    writer = TCPReaderWriter(host, port, "debug-key")  # it installs its own SIGINT handler
    signal.signal(signal.SIGINT, sigint)
    writer.launch()
    daemon, _ = listener.accept()
    listener.close()
    daemon.settimeout(5)
    handshake = b""
    while not handshake.endswith(b"\n"):
        handshake += daemon.recv(1)
    assert json.loads(handshake)["data"]["key"] == "debug-key"
    return writer, daemon


class _Stdout:
    """Stands in for sys.stdout, keeping each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, data: str) -> int:
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        pass


def _receive(daemon: socket.socket, size: int) -> str:
    data = b""
    while len(data) < size:
        data += daemon.recv(size - len(data))
    return data.decode()


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_chunk_leaves_the_stdio_and_the_remote_debug_writer_as_the_same_bytes(
    sdk_writers: None, monkeypatch: pytest.MonkeyPatch, chunk: LLMResultChunk
) -> None:
    session_id = "6f1c9a2e-0000-4000-8000-000000000002"
    expected = _sdk_bytes(session_id, chunk)
    serialized: list[str] = []

    def counting(session: str | None, message: LLMResultChunk) -> str:
        serialized.append(session or "")
        return chunk_message_json(session, message)

    monkeypatch.setattr(sdk_runtime, "chunk_message_json", counting)
    sdk_runtime.serialize_chunks_once()

    stdout = _Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    stdio = StdioResponseWriter()
    stdio.session_message(session_id, stdio.stream_object(chunk))

    tcp, daemon = _tcp_writer()
    try:
        tcp.session_message(session_id, tcp.stream_object(chunk))
        received = _receive(daemon, len(expected.encode()))
    finally:
        tcp.close()
        daemon.close()

    assert "".join(stdout.writes) == received == expected
    assert serialized == [session_id, session_id], "both writers serialized the chunk the plugin's way"
    assert len(stdout.writes) == 1, "the message and its separator leave in one write"


# ---------------------------------------------------------------------------------------------
# libyaml for the SDK's YAML


def _sdk_yaml_files() -> list[Path]:
    """The manifest and everything under provider_configs/dify/: what the SDK's registration reads."""
    return [PLUGIN_ROOT / "manifest.yaml", *sorted((PLUGIN_ROOT / "provider_configs" / "dify").rglob("*.yaml"))]


def test_libyaml_loads_every_file_the_sdk_reads_to_the_same_data(monkeypatch: pytest.MonkeyPatch) -> None:
    loaders: list[Any] = []
    load = yaml.load

    def recording_load(stream: Any, **options: Any) -> Any:
        loaders.append(options["Loader"])
        return load(stream, **options)

    monkeypatch.setattr(yaml, "load", recording_load)
    files = _sdk_yaml_files()
    assert len(files) > 20
    with sdk_runtime.libyaml_for_the_sdk():
        fast = [yaml_loader.load_yaml_file(str(path)) for path in files]
    pure = [yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader) for path in files]
    assert fast == pure
    assert loaders[: len(files)] == [yaml.CSafeLoader] * len(files)
    assert yaml_loader.yaml is yaml, "the SDK's own loader is back after the registration"


def test_a_broken_yaml_file_is_still_the_sdks_yaml_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "llm.yaml"
    broken.write_text("model: qwen\nlabel: [unclosed\n", encoding="utf-8")
    with sdk_runtime.libyaml_for_the_sdk(), pytest.raises(yaml.YAMLError, match=r"llm\.yaml"):
        yaml_loader.load_yaml_file(str(broken))


# ---------------------------------------------------------------------------------------------
# LiteLLM loaded after the first heartbeat


class _Server:
    """What the hook needs of the SDK's Plugin: its default writer."""

    def __init__(self, writer: ResponseWriter | None) -> None:
        self.default_writer = writer


def test_litellm_starts_loading_once_right_after_the_first_heartbeat_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = _Collect()
    sdk_heartbeat = writer.heartbeat
    started: list[tuple[float, list[str]]] = []
    monkeypatch.setattr(sdk_runtime, "start_loading", lambda delay=0.3: started.append((delay, list(writer.out))))
    sdk_runtime.load_litellm_after_first_heartbeat(_Server(writer))
    assert started == []
    writer.heartbeat()
    [(delay, written)] = started
    assert delay == 0 and json.loads(written[0])["event"] == "heartbeat", "the heartbeat was out first"
    writer.heartbeat()
    writer.heartbeat()
    assert len(started) == 1 and len(writer.out) == 6
    assert writer.heartbeat == sdk_heartbeat, "later heartbeats are the SDK's own"


def test_without_a_default_writer_litellm_loads_after_the_usual_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[float] = []
    monkeypatch.setattr(sdk_runtime, "start_loading", lambda delay=0.3: started.append(delay))
    sdk_runtime.load_litellm_after_first_heartbeat(_Server(None))
    assert started == [0.3]


# ---------------------------------------------------------------------------------------------
# The GC during start-up


def test_no_collection_runs_while_the_plugin_starts_and_its_objects_end_frozen() -> None:
    probe = (
        "import gc, json, sys\n"
        "before = [g['collections'] for g in gc.get_stats()]\n"
        "import main\n"
        "after = [g['collections'] for g in gc.get_stats()]\n"
        "print(json.dumps({'before': before, 'after': after, 'enabled': gc.isenabled(),"
        " 'frozen': gc.get_freeze_count()}), file=sys.stderr)\n"
    )
    done = run_python_in(PLUGIN_ROOT, "-c", probe, check=True)
    state = json.loads(done.stderr.strip().splitlines()[-1])
    (young_before, *old_before), (young_after, *old_after) = state["before"], state["after"]
    assert old_after == old_before, "no collection of the older generations during the start-up"
    # Between the GC coming back on and the probe reading its counters one young collection may run.
    assert young_after - young_before <= 1
    assert state["enabled"] is True
    assert state["frozen"] > 50_000, "the SDK's and the adapters' long-lived objects are frozen"
