"""Tests for tests/stdio_driver.py against a minimal probe plugin built in a temp dir.

The probe is a real dify_plugin model provider (manifest, provider YAML + class, one LLM
class, one predefined model YAML) so every test goes through the SDK's real stdio
server and dispatch path, exactly as under the Dify daemon.

Probe LLM behaviour, selected by model name:

* any name: echoes the last user message word by word, one chunk per word, last
  chunk with usage + finish_reason; ``credentials["word_delay"]`` sleeps between words.
* ``boom``: raises (synchronously) an exception mapped to InvokeRateLimitError.
* ``boom-mid``: yields one chunk, then raises an unmapped exception mid-stream.
* ``slow``: sleeps 1.5 s before the first chunk.
* ``chatty``: print()s a non-JSON line to stdout before answering.
* ``die``: writes to stderr and exits the process with code 3.
* ``huge``: yields one 6 MiB chunk (over the daemon's 5 MiB line limit).
* ``freeze``: holds the gevent hub for 1.5 s (a busy loop) before answering.
"""

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.stdio_driver import (
    DAEMON_MAX_LINE_BYTES,
    SDK_HEARTBEAT_INTERVAL,
    PluginProcess,
    PluginProcessError,
    PluginSessionError,
    StdoutLineTooLongError,
    build_envelope,
    build_request_data,
    daemon_rule_violations,
    prompt_message,
)

PROVIDER = "probe"
ECHO_MODEL = "probe-echo"
GOOD_CREDENTIALS = {"api_key": "good"}
# Fast heartbeats so the heartbeat tests do not wait 10 s per beat; not faster, since the driver
# holds every process to gaps of at most twice the interval, and on a busy 2-core machine the OS
# alone can hold a process back for a few tenths of a second.
PLUGIN_ENV = {"HEARTBEAT_INTERVAL": "0.5"}

_MANIFEST = """\
version: 0.0.1
type: plugin
author: probe
name: probe
label:
  en_US: Probe
description:
  en_US: Probe plugin for the stdio driver tests
icon: icon.svg
created_at: "2025-01-01T00:00:00Z"
resource:
  memory: 268435456
plugins:
  models:
    - provider/probe.yaml
meta:
  version: 0.0.1
  arch: [amd64, arm64]
  runner:
    language: python
    version: "3.12"
    entrypoint: main
"""

_MAIN = """\
from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv())

if __name__ == "__main__":
    plugin.run()
"""

_ICON = '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/></svg>\n'

_PROVIDER_YAML = """\
provider: probe
label:
  en_US: Probe
icon_small:
  en_US: icon.svg
supported_model_types:
  - llm
configurate_methods:
  - predefined-model
provider_credential_schema:
  credential_form_schemas:
    - variable: api_key
      label:
        en_US: API Key
      type: secret-input
      required: true
models:
  llm:
    predefined:
      - "models/llm/*.yaml"
extra:
  python:
    provider_source: provider/probe.py
    model_sources:
      - models/llm/llm.py
"""

_PROVIDER_PY = """\
from dify_plugin import ModelProvider
from dify_plugin.errors.model import CredentialsValidateFailedError


class ProbeProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        if credentials.get("api_key") != "good":
            raise CredentialsValidateFailedError("api_key must be 'good'")
"""

_MODEL_YAML = """\
model: probe-echo
label:
  en_US: Probe Echo
model_type: llm
features: []
fetch_from: predefined-model
model_properties:
  mode: chat
  context_size: 4096
parameter_rules:
  - name: temperature
    use_template: temperature
  - name: max_tokens
    use_template: max_tokens
    default: 256
    min: 1
    max: 1024
pricing:
  input: "0.001"
  output: "0.002"
  unit: "0.001"
  currency: USD
"""

_LLM_PY = '''\
import os
import sys
import time
from collections.abc import Generator

from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta
from dify_plugin.entities.model.message import (
    AssistantPromptMessage,
    PromptMessage,
    PromptMessageTool,
    UserPromptMessage,
)
from dify_plugin.errors.model import InvokeRateLimitError


class ProbeRateLimited(Exception):
    """Stands in for a vendor SDK exception."""


def _last_user_text(prompt_messages: list[PromptMessage]) -> str:
    for message in reversed(prompt_messages):
        if isinstance(message, UserPromptMessage) and isinstance(message.content, str):
            return message.content
    return ""


class ProbeLLM(LargeLanguageModel):
    def _invoke(self, model, credentials, prompt_messages, model_parameters,
                tools=None, stop=None, stream=True, user=None):
        # Synchronous failures go through _invoke_error_mapping in the SDK.
        if model == "boom":
            raise ProbeRateLimited("probe says slow down")
        if model == "die":
            sys.stderr.write("probe: dying on purpose\\n")
            sys.stderr.flush()
            os._exit(3)
        if model == "chatty":
            print("hello from print()", flush=True)
        if model == "freeze":
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                pass
        text = _last_user_text(prompt_messages)
        words = ["x" * (6 * 1024 * 1024)] if model == "huge" else text.split()
        if not stream:
            return LLMResult(
                model=model,
                message=AssistantPromptMessage(content=" ".join(words)),
                usage=self._calc_response_usage(model, credentials, len(text.split()), len(words)),
            )
        return self._stream(model, credentials, words, len(text.split()),
                            float(credentials.get("word_delay", 0)))

    def _stream(self, model, credentials, words, prompt_tokens, delay) -> Generator[LLMResultChunk, None, None]:
        if model == "slow":
            time.sleep(1.5)
        for index, word in enumerate(words):
            if index and delay:
                time.sleep(delay)
            if model == "boom-mid" and index == 1:
                raise ProbeRateLimited("failed mid-stream")
            last = index == len(words) - 1
            yield LLMResultChunk(
                model=model,
                delta=LLMResultChunkDelta(
                    index=index,
                    message=AssistantPromptMessage(content=word if index == 0 else " " + word),
                    usage=self._calc_response_usage(model, credentials, prompt_tokens, len(words)) if last else None,
                    finish_reason="stop" if last else None,
                ),
            )

    def get_num_tokens(self, model, credentials, prompt_messages, tools=None) -> int:
        return len(_last_user_text(prompt_messages).split())

    def validate_credentials(self, model, credentials) -> None:
        return None

    @property
    def _invoke_error_mapping(self):
        return {InvokeRateLimitError: [ProbeRateLimited]}
'''


def write_probe_plugin(root: Path) -> Path:
    """Write the probe plugin under ``root`` and return its directory."""
    files = {
        "manifest.yaml": _MANIFEST,
        "main.py": _MAIN,
        "_assets/icon.svg": _ICON,
        "provider/probe.yaml": _PROVIDER_YAML,
        "provider/probe.py": _PROVIDER_PY,
        "models/__init__.py": "",
        "models/llm/__init__.py": "",
        "models/llm/llm.py": _LLM_PY,
        "models/llm/probe-echo.yaml": _MODEL_YAML,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def llm_data(text: str, model: str = ECHO_MODEL, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": model,
        "credentials": dict(GOOD_CREDENTIALS),
        "prompt_messages": [prompt_message("user", text)],
        "model_parameters": {"temperature": 0.1},
    }
    data.update(extra)
    return data


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"]["message"]["content"] for c in chunks)


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_probe_plugin(tmp_path_factory.mktemp("probe_plugin"))


@pytest.fixture(scope="module")
def plugin(probe_dir: Path) -> Iterator[PluginProcess]:
    with PluginProcess.start(probe_dir, env=PLUGIN_ENV) as proc:
        yield proc


def _pid_exists(pid: int) -> bool:
    # /proc/<pid> exists for zombies too, so its absence means "reaped".
    return Path(f"/proc/{pid}").exists()


# --------------------------------------------------------------------------- pure helpers


def test_build_request_data_fills_daemon_defaults() -> None:
    rerank = build_request_data("invoke_rerank", {"model": "r", "query": "q", "docs": ["a"]}, provider="p")
    assert rerank == {
        "user_id": "test-user",
        "type": "model",
        "action": "invoke_rerank",
        "model": "r",
        "query": "q",
        "docs": ["a"],
        "provider": "p",
        "model_type": "rerank",
        "credentials": {},
        "score_threshold": 0.0,
        "top_n": 0,
    }
    llm = build_request_data(
        "invoke_llm", {"model": "m", "prompt_messages": [{"role": "assistant", "content": "hi"}]}, provider="p"
    )
    assert llm["tools"] is None and llm["stop"] is None and llm["stream"] is True
    assert llm["model_parameters"] == {}
    assert llm["prompt_messages"] == [
        {"role": "assistant", "content": "hi", "name": "", "tool_calls": [], "tool_call_id": ""}
    ]
    assert build_request_data("invoke_speech2text", {"model": "s", "file": b"\x01\xff"}, provider="p")["file"] == "01ff"
    with pytest.raises(ValueError, match="prompt_messages"):
        build_request_data("invoke_llm", {"model": "m"}, provider="p")
    with pytest.raises(ValueError, match="given twice"):
        build_request_data("invoke_llm", {"provider": "a"}, provider="b")
    # fill_defaults=False sends exactly what was given.
    assert build_request_data("invoke_llm", {"x": 1}, fill_defaults=False) == {
        "user_id": "test-user",
        "type": "model",
        "action": "invoke_llm",
        "x": 1,
    }
    assert list(build_envelope("sid", {"a": 1})) == [
        "session_id",
        "conversation_id",
        "message_id",
        "app_id",
        "endpoint_id",
        "context",
        "event",
        "data",
    ]


# --------------------------------------------------------------------------- shared process


def test_start_heartbeat_and_manifest(plugin: PluginProcess) -> None:
    assert plugin.heartbeats >= 1
    assert 0 < plugin.startup_seconds_to_heartbeat < 30
    assert plugin.manifest is not None
    assert plugin.manifest["name"] == "probe"
    assert plugin.manifest["plugins"]["models"] == ["provider/probe.yaml"]
    assert any("Installed model: probe" in log.get("message", "") for log in plugin.logs)
    assert plugin.is_alive()


def test_validate_provider_credentials(plugin: PluginProcess) -> None:
    ok = plugin.request("validate_provider_credentials", {"credentials": GOOD_CREDENTIALS}, provider=PROVIDER)
    assert ok == [{"result": True, "credentials": GOOD_CREDENTIALS}]
    with pytest.raises(PluginSessionError) as info:
        plugin.request("validate_provider_credentials", {"credentials": {"api_key": "bad"}}, provider=PROVIDER)
    assert info.value.error_type == "CredentialsValidateFailedError"
    assert info.value.message == "api_key must be 'good'"
    assert info.value.description is None  # not an InvokeError
    assert "Traceback" in (info.value.traceback or "")


def test_get_ai_model_schemas(plugin: PluginProcess) -> None:
    [item] = plugin.request(
        "get_ai_model_schemas",
        {"model": ECHO_MODEL, "credentials": GOOD_CREDENTIALS},
        provider=PROVIDER,
        model_type="llm",
    )
    schema = item["model_schema"]
    assert schema["model"] == ECHO_MODEL
    assert schema["model_properties"]["context_size"] == 4096
    assert {rule["name"] for rule in schema["parameter_rules"]} == {"temperature", "max_tokens"}
    # Unknown model and empty credentials: no customizable-schema lookup, so null.
    [unknown] = plugin.request("get_ai_model_schemas", {"model": "nope"}, provider=PROVIDER, model_type="llm")
    assert unknown == {"model_schema": None}


def test_invoke_llm_streams_word_chunks(plugin: PluginProcess) -> None:
    history = [
        prompt_message("system", "be an echo"),
        prompt_message("user", "old question"),
        prompt_message("assistant", "old answer"),
        prompt_message("user", "hello stdio world"),
    ]
    chunks = plugin.request("invoke_llm", llm_data("", prompt_messages=history), provider=PROVIDER)
    assert [c["delta"]["index"] for c in chunks] == [0, 1, 2]
    assert content_of(chunks) == "hello stdio world"
    assert all(c["model"] == ECHO_MODEL for c in chunks)
    assert [c["delta"]["finish_reason"] for c in chunks] == [None, None, "stop"]
    usage = chunks[-1]["delta"]["usage"]
    assert usage["completion_tokens"] == 3 and usage["currency"] == "USD"
    assert usage["prompt_price"] == "0.0000030"  # Decimals arrive as JSON strings

    # stream=False: the SDK still sends exactly one chunk.
    [single] = plugin.request("invoke_llm", llm_data("a b c", stream=False), provider=PROVIDER)
    assert single["delta"]["message"]["content"] == "a b c"


def test_stream_yields_items_as_they_arrive(plugin: PluginProcess) -> None:
    delay = 0.05
    data = llm_data("one two three four five")
    data["credentials"]["word_delay"] = str(delay)
    session = plugin.stream("invoke_llm", data, provider=PROVIDER)
    received_at: list[float] = []
    for _ in session:
        received_at.append(time.monotonic())
    assert len(received_at) == 5
    assert session.result.ended_at is not None
    ttfc = session.time_to_first_item
    assert ttfc is not None and ttfc < session.item_times[-1] - session.sent_at
    # Chunks really were spread out (not buffered until the end).
    assert session.item_times[-1] - session.item_times[0] >= 4 * delay * 0.8
    assert received_at[-1] - received_at[0] >= 4 * delay * 0.8


def test_concurrent_sessions_are_demultiplexed(plugin: PluginProcess) -> None:
    start = threading.Barrier(8)

    def worker(i: int) -> tuple[str, float, float]:
        words = " ".join(f"t{i}w{j}" for j in range(6))
        data = llm_data(words)
        data["credentials"]["word_delay"] = "0.02"
        start.wait(timeout=10)
        t0 = time.monotonic()
        chunks = plugin.request("invoke_llm", data, provider=PROVIDER, timeout=20)
        return content_of(chunks), t0, time.monotonic()

    # 8 real threads; .result() re-raises any worker failure here.
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = [f.result(timeout=30) for f in [pool.submit(worker, i) for i in range(8)]]
    assert [text for text, _, _ in outcomes] == [" ".join(f"t{i}w{j}" for j in range(6)) for i in range(8)]
    # They genuinely overlapped (the plugin ran them concurrently).
    assert max(t0 for _, t0, _ in outcomes) < min(t1 for _, _, t1 in outcomes)
    assert plugin.pending_sessions() == []


def test_error_session_raises_with_error_type(plugin: PluginProcess) -> None:
    with pytest.raises(PluginSessionError) as info:
        plugin.request("invoke_llm", llm_data("hi", model="boom"), provider=PROVIDER)
    err = info.value
    assert err.error_type == "InvokeRateLimitError"
    assert err.description is not None and "probe says slow down" in err.description
    assert err.action == "invoke_llm" and err.session_id
    assert err.ended

    # An exception raised while streaming bypasses the SDK's error mapping: raw class name,
    # and the chunks sent before it are kept.
    result = plugin.collect("invoke_llm", llm_data("first second third", model="boom-mid"), provider=PROVIDER)
    assert [c["delta"]["message"]["content"] for c in result.items] == ["first"]
    assert result.error is not None and result.error.error_type == "ProbeRateLimited"
    assert result.error.description is None
    with pytest.raises(PluginSessionError):
        result.raise_for_error()

    # The process is unaffected.
    assert content_of(plugin.request("invoke_llm", llm_data("still alive"), provider=PROVIDER)) == "still alive"


def test_sdk_validation_errors(plugin: PluginProcess) -> None:
    # A missing required key fails pydantic validation inside the plugin.
    with pytest.raises(PluginSessionError) as info:
        plugin.request(
            "invoke_llm",
            {
                "provider": PROVIDER,
                "model_type": "llm",
                "model": ECHO_MODEL,
                "credentials": {},
                "prompt_messages": [],
                "model_parameters": {},
            },  # no tools / stop
            fill_defaults=False,
        )
    assert info.value.error_type == "ValidationError"
    assert "tools" in info.value.message and "stop" in info.value.message

    # prompt_messages=null raises TypeError inside a validator; the SDK router then emits a
    # plugin-level {"event":"error"} *with* a session_id and still calls the handler with
    # the raw dict, which fails again -> session error.
    before = len(plugin.plugin_errors)
    with pytest.raises(PluginSessionError) as info:
        plugin.request("invoke_llm", llm_data("x", prompt_messages=None), provider=PROVIDER, fill_defaults=False)
    assert info.value.error_type == "AttributeError"
    new = plugin.plugin_errors[before:]
    assert len(new) == 1 and new[0]["session_id"] == info.value.session_id
    assert new[0]["data"]["error_type"] == "TypeError"


def test_unknown_action_and_stray_stdout(plugin: PluginProcess) -> None:
    # No route: the SDK sends only "end".
    assert plugin.request("no_such_action", {"provider": PROVIDER}) == []
    # print() in plugin code ends up on stdout, the protocol channel.
    plugin.request("invoke_llm", llm_data("quiet", model="chatty"), provider=PROVIDER)
    assert "hello from print()" in plugin.non_json_lines
    # An unparsable stdin line gets a plugin-level error event, no session.
    before = len(plugin.plugin_errors)
    plugin.send_raw("this is not json")
    deadline = time.monotonic() + 5
    while len(plugin.plugin_errors) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert plugin.plugin_errors[before]["session_id"] is None


def test_timeout_names_action_and_session(plugin: PluginProcess) -> None:
    session = plugin.stream("invoke_llm", llm_data("late words", model="slow"), provider=PROVIDER, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        list(session)
    assert time.monotonic() - t0 < 1.0
    assert "invoke_llm" in str(info.value) and session.session_id in str(info.value)
    assert session.session_id not in plugin.pending_sessions()
    # The late answer is kept as orphan messages, and the plugin keeps working.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(m["session_id"] == session.session_id and m["data"]["type"] == "end" for m in plugin.orphan_messages):
            break
        time.sleep(0.02)
    orphans = [m for m in plugin.orphan_messages if m["session_id"] == session.session_id]
    assert [m["data"]["type"] for m in orphans] == ["stream", "stream", "end"]
    assert content_of(plugin.request("invoke_llm", llm_data("after timeout"), provider=PROVIDER)) == "after timeout"


def test_heartbeats_keep_flowing(plugin: PluginProcess) -> None:
    plugin.wait_for_heartbeats(plugin.heartbeats + 3, timeout=5)
    gaps = plugin.heartbeat_gaps(include_current=True)
    # HEARTBEAT_INTERVAL=0.5; a second or more would mean the loop stalled.
    assert max(gaps[1:]) < 1.0, gaps


# --------------------------------------------------------------------------- own processes


def test_a_blocked_hub_is_reported_as_late_heartbeats(probe_dir: Path) -> None:
    with PluginProcess.start(probe_dir, env=PLUGIN_ENV) as proc:
        assert proc.heartbeat_interval == 0.5 and proc.heartbeat_gap_bound == 1.0
        assert proc.max_heartbeat_gap == 0.0  # not in service before a session has ended
        proc.request("invoke_llm", llm_data("warm up"), provider=PROVIDER)
        proc.wait_for_heartbeats(proc.heartbeats + 3, timeout=5)
        assert 0.25 < proc.max_heartbeat_gap < 1.0
        proc.request("invoke_llm", llm_data("hold on", model="freeze"), provider=PROVIDER)
        assert proc.max_heartbeat_gap >= 1.4
    [problem] = daemon_rule_violations()  # reported once, here instead of by the conftest fixture
    assert f"plugin pid {proc.pid}: no heartbeat for" in problem and "over the 1 s allowed" in problem
    assert daemon_rule_violations() == []


def test_the_sdk_heartbeat_interval_applies_when_none_is_set(probe_dir: Path) -> None:
    with PluginProcess.start(probe_dir) as proc:
        assert proc.heartbeat_interval == SDK_HEARTBEAT_INTERVAL
        assert proc.heartbeat_gap_bound == 2 * SDK_HEARTBEAT_INTERVAL


def test_process_death_reports_exit_code_and_stderr(probe_dir: Path) -> None:
    with PluginProcess.start(probe_dir, env=PLUGIN_ENV) as proc:
        with pytest.raises(PluginProcessError) as info:
            proc.request("invoke_llm", llm_data("bye", model="die"), provider=PROVIDER, timeout=10)
        assert info.value.returncode == 3
        assert "probe: dying on purpose" in info.value.stderr_tail
        assert "exit code 3" in str(info.value)
        with pytest.raises(PluginProcessError):
            proc.request("invoke_llm", llm_data("again"), provider=PROVIDER)


def test_oversized_stdout_line_is_flagged(probe_dir: Path) -> None:
    with PluginProcess.start(probe_dir, env=PLUGIN_ENV) as proc:
        with pytest.raises(StdoutLineTooLongError) as info:
            proc.request("invoke_llm", llm_data("big", model="huge"), provider=PROVIDER, timeout=20)
        assert info.value.size_at_least >= DAEMON_MAX_LINE_BYTES
        assert info.value.session_id is not None
        # Like the daemon, the driver killed the plugin.
        deadline = time.monotonic() + 5
        while proc.returncode is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.returncode is not None


# A stand-in "plugin" (no SDK) that answers each request with one stream message of
# exactly data["size"] bytes, to pin the daemon's line limit to the byte.
_FAKE_SIZED_MAIN = """\
import json
import sys


def emit(text):
    sys.stdout.write(text + "\\n\\n")
    sys.stdout.flush()


emit(json.dumps({"event": "heartbeat", "session_id": None, "data": {}}))
for line in sys.stdin:
    request = json.loads(line)
    sid, size = request["session_id"], request["data"]["size"]
    if sid is None:
        emit(json.dumps({"event": "log", "data": {"message": "x" * size}}))
        continue
    message = {"event": "session", "session_id": sid, "data": {"type": "stream", "data": {"pad": ""}}}
    message["data"]["data"]["pad"] = "x" * (size - len(json.dumps(message)))
    emit(json.dumps(message))
    emit(json.dumps({"event": "session", "session_id": sid, "data": {"type": "end", "data": {}}}))
"""


def test_line_limit_matches_go_scanner(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(_FAKE_SIZED_MAIN)
    with PluginProcess.start(tmp_path) as proc:
        assert proc.manifest is None  # the fake prints no manifest
        # bufio.Scanner needs line + "\n" to fit in its 5 MiB buffer.
        [item] = proc.request("anything", {"size": DAEMON_MAX_LINE_BYTES - 1})
        assert len(item["pad"]) > DAEMON_MAX_LINE_BYTES - 1024
        with pytest.raises(StdoutLineTooLongError):
            proc.request("anything", {"size": DAEMON_MAX_LINE_BYTES})

    # A too-long line outside any session (here a log) still fails the test at exit.
    with pytest.raises(StdoutLineTooLongError), PluginProcess.start(tmp_path) as proc:
        proc.send_raw(build_envelope(None, {"size": DAEMON_MAX_LINE_BYTES + 10}))
        deadline = time.monotonic() + 5
        while proc.fatal_error is None and time.monotonic() < deadline:
            time.sleep(0.01)


def test_start_failure_reports_stderr(tmp_path: Path) -> None:
    broken = write_probe_plugin(tmp_path / "broken")
    # Drop the required model_properties: startup dies before any stdout.
    text = (broken / "models/llm/probe-echo.yaml").read_text()
    (broken / "models/llm/probe-echo.yaml").write_text(text.replace("model_properties:", "unused:"))
    with pytest.raises(PluginProcessError) as info:
        PluginProcess.start(broken, ready_timeout=20)
    assert info.value.returncode not in (None, 0)
    assert "model_properties" in info.value.stderr_tail


def test_close_leaves_no_process_or_threads(probe_dir: Path) -> None:
    threads_before = set(threading.enumerate())
    proc = PluginProcess.start(probe_dir, env=PLUGIN_ENV)
    pid = proc.pid
    assert proc.request("invoke_llm", llm_data("bye"), provider=PROVIDER)
    proc.close()
    proc.close()  # idempotent
    assert proc.returncode is not None
    assert not _pid_exists(pid), "process still exists (zombie or alive)"
    assert proc.threads_alive() == []
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(PluginProcessError, match="close"):
        proc.request("invoke_llm", llm_data("closed"), provider=PROVIDER)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
