"""Troubleshooting without debugging: each retry and each final failure is one WARNING line, and
each timeout says how long it waited and what set the limit.

The line carries the route path, the status (or how the attempt failed), the gateway's request id,
the attempt and its latency, and nothing else: no body, prompt, answer, header or credential.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeConnectionError, InvokeError

from adapters.gateway.config import GatewayConfig
from tests.conftest import PLUGIN_ROOT, TEST_KEY
from tests.stdio_driver import PluginProcess, PluginSessionError, chat_data

PROMPT = "wombat-4471 private prompt"
_LINE = re.compile(
    r"AI Gateway (?P<event>\w+): method=POST route=(?P<route>\S+) status=(?P<status>\S+) "
    r"request_id=(?P<request_id>\S+) attempt=(?P<attempt>\d+/\d+) latency_ms=(?P<latency>\d+)(?P<rest>.*)"
)


def _ask(llm, credentials, *, stream: bool = False) -> str:
    chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content=PROMPT)], {}, stream=stream))
    return "".join(c.delta.message.content for c in chunks)


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    records = [r for r in caplog.records if r.name.startswith("adapters")]
    assert all(r.levelno == logging.WARNING for r in records)
    lines = [_LINE.fullmatch(r.getMessage()) for r in records]
    assert all(lines), [r.getMessage() for r in records]
    return [m.groupdict() for m in lines if m]


def _no_private_text(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert PROMPT not in text and "wombat" not in text and TEST_KEY not in text, text


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    _no_private_text(caplog)


def test_each_retry_and_the_success_after_it(llm, gateway, warnings) -> None:
    credentials = {**gateway.credentials("/_fault/fail-first-2-dserror-503"), "max_retries": "2", "retry_backoff": "0"}
    assert PROMPT in _ask(llm, credentials)
    lines = _lines(warnings)
    assert [(line["event"], line["status"], line["attempt"]) for line in lines] == [
        ("retry", "503", "1/3"),
        ("retry", "503", "2/3"),
    ]
    route = "/_fault/fail-first-2-dserror-503/v1/chat/completions"
    assert all(line["route"] == route and line["request_id"] != "-" for line in lines)
    assert all(re.fullmatch(r" retry_in_s=\d+\.\d\d", line["rest"]) for line in lines)


def test_a_final_failure_after_retries_and_one_that_is_not_retried(llm, gateway, warnings) -> None:
    with pytest.raises(InvokeError):
        _ask(llm, {**gateway.credentials("/_fault/status-503"), "max_retries": "1", "retry_backoff": "0"})
    with pytest.raises(InvokeError):
        _ask(llm, {**gateway.credentials("/_fault/status-400"), "max_retries": "1"})
    lines = _lines(warnings)
    assert [(line["event"], line["status"], line["attempt"]) for line in lines] == [
        ("retry", "503", "1/2"),
        ("failure", "503", "2/2"),
        ("failure", "400", "1/2"),
    ]


def test_failures_without_an_answer_are_named(llm, gateway, warnings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvokeConnectionError):
        _ask(llm, {"endpoint_url": f"http://127.0.0.1:{port}/v1", "api_key": TEST_KEY, "retry_backoff": "0"})
    with pytest.raises(InvokeConnectionError):
        _ask(llm, gateway.credentials("/_fault/stall-5", timeout="0.3"))
    lines = _lines(warnings)
    assert [(line["event"], line["status"], line["attempt"]) for line in lines] == [
        ("retry", "connect_error", "1/3"),
        ("retry", "connect_error", "2/3"),
        ("failure", "connect_error", "3/3"),
        ("failure", "read_timeout", "1/1"),
    ]
    assert int(lines[-1]["latency"]) >= 300


@pytest.mark.parametrize(
    ("fault", "problem"), [("ssereset", "connection_closed"), ("stall-midstream-5", "read_timeout")]
)
def test_a_stream_that_breaks_after_its_200_is_a_final_failure(
    llm, gateway, warnings, fault: str, problem: str
) -> None:
    with pytest.raises(InvokeError):
        _ask(llm, gateway.credentials(f"/_fault/{fault}", timeout="0.3"), stream=True)
    [line] = _lines(warnings)
    assert (line["event"], line["status"], line["rest"]) == ("failure", "200", f" problem={problem}")


def test_the_warnings_reach_difys_plugin_log(gateway) -> None:
    with PluginProcess.start(PLUGIN_ROOT, env={"INSTALL_METHOD": "local"}) as plugin:
        credentials = {**gateway.credentials("/_fault/status-503"), "max_retries": "1", "retry_backoff": "0"}
        with pytest.raises(PluginSessionError):
            plugin.request("invoke_llm", chat_data("aliyun_ai_gateway", "qwen-max", credentials, PROMPT, stream=False))
        logged = [(e["level"], e["message"]) for e in plugin.logs if "AI Gateway" in str(e)]
    assert [(level, message.split(":")[0]) for level, message in logged] == [
        ("WARNING", "AI Gateway retry"),
        ("WARNING", "AI Gateway failure"),
    ]
    assert all(PROMPT not in message and TEST_KEY not in message for _, message in logged)


def test_a_read_timeout_says_how_long_and_what_set_it(llm, gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        InvokeConnectionError,
        match=re.escape("sent nothing for 0.3 s (read timeout; set by credential field 'timeout')"),
    ):
        _ask(llm, gateway.credentials("/_fault/stall-5", timeout="0.3"))
    monkeypatch.setenv("MAX_REQUEST_TIMEOUT", "0.4")
    with pytest.raises(
        InvokeConnectionError, match=re.escape("sent nothing for 0.4 s (read timeout; set by MAX_REQUEST_TIMEOUT)")
    ):
        _ask(llm, gateway.credentials("/_fault/stall-midstream-5"), stream=True)
    monkeypatch.delenv("MAX_REQUEST_TIMEOUT")
    default = GatewayConfig.from_credentials({"endpoint_url": "https://gw/v1", "api_key": "k"}).timeouts
    assert default.read_limit() == "300 s (read timeout; set by the plugin's default)"
    assert default.connect_limit() == "10 s (connect timeout; the plugin's fixed limit)"


def test_a_connect_timeout_says_how_long_and_what_set_it(llm) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            while len(fillers) < 8:  # until one connect hangs: the queue is full
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            credentials = {"endpoint_url": f"http://127.0.0.1:{port}/v1", "api_key": TEST_KEY, "max_retries": "0"}
            expected = "within 0.4 s (connect timeout; the read timeout, set by credential field 'timeout')"
            with pytest.raises(InvokeConnectionError, match=re.escape(expected)):
                _ask(llm, {**credentials, "timeout": "0.4"})
        finally:
            for filler in fillers:
                filler.close()


@pytest.mark.parametrize("call", ["llm-blocking", "embedding-openai", "rerank-cohere", "speech2text", "tts-dashscope"])
def test_an_unusable_200_answer_is_a_final_failure(gateway, warnings, call: str) -> None:
    from tests.test_fault_matrix import INVOKERS

    with pytest.raises(InvokeError, match="unusable"):
        INVOKERS[call](gateway.credentials("/_fault/badjson"))
    [line] = _lines(warnings)
    assert (line["event"], line["status"], line["rest"]) == ("failure", "200", " problem=unusable_answer")
