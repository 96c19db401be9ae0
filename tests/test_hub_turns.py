"""One busy session never freezes the others: the gevent hub gets its turn during floods and big counts.

Every session of the plugin process, and the heartbeat the daemon kills a silent plugin without,
share one gevent hub (adapters/cooperative.py). The bounds held here:
- during a stream the gateway sends as fast as the plugin reads (the emulator's `flood-S`, run in a
  process of its own so it does not share the test's hub), heartbeats keep their cadence (no gap
  over twice HEARTBEAT_INTERVAL) and a paced stream beside it sees no gap over 0.5 s;
- counting the tokens of a 10 MB prompt, inflating a gzip answer up to the 16 MiB read bound, or
  reading a large blocking answer still inside that bound (a chat text, embedding vectors, a
  transcript) holds the hub for no more than 100 ms at a time.

`make test` floods for FLOOD_SECONDS (3 s, with heartbeats every 0.5 s); AIGW_FLOOD_SECONDS=60 runs
the issue's full minute.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gevent
import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.models.audio import silence_wav
from tests.conftest import PLUGIN_ROOT, Gateway, adapter
from tests.emulator.hostile import FLOOD_WORD
from tests.emulator.process import emulator_process
from tests.stdio_driver import PluginProcess, SessionStream, chat_data

PROVIDER = "aliyun_ai_gateway"
FLOOD_SECONDS = float(os.environ.get("AIGW_FLOOD_SECONDS", "3"))
HEARTBEAT_INTERVAL = 0.5
PACED_GAP_BOUND = 0.5
HUB_HOLD_BOUND = 0.1
PACED_WORDS = 30  # 20 ms apart: ~0.6 s per paced stream
TWELVE_MB = 12_000_000
TRANSCRIBER = "qwen3-asr-flash"  # transcribes through chat: the transcript is a chat answer's text


@pytest.fixture(scope="module")
def separate_gateway() -> Iterator[str]:
    with emulator_process() as base_url:
        yield base_url


@dataclass
class Flood:
    chunks: int = 0
    unexpected: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    ended_at: float = 0.0


def _consume(session: SessionStream, flood: Flood) -> None:
    for item in session:
        text = item["delta"]["message"]["content"] or ""
        if text not in ("", FLOOD_WORD):
            flood.unexpected.append(text[:40])
        flood.chunks += 1
        flood.finish_reason = item["delta"]["finish_reason"] or flood.finish_reason
    flood.ended_at = time.monotonic()


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def test_a_flooding_stream_starves_neither_the_heartbeat_nor_a_paced_stream(separate_gateway: str) -> None:
    def credentials(faults: str) -> dict[str, str]:
        return {"endpoint_url": f"{separate_gateway}{faults}/v1", "api_key": "sk-any", "max_retries": "0"}

    env = {"INSTALL_METHOD": "local", "HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL)}
    with PluginProcess.start(PLUGIN_ROOT, env=env) as plugin:
        plugin.request("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials(""), "warm up"))  # LiteLLM's import
        plugin.wait_for_heartbeats(plugin.heartbeats + 2, timeout=10)

        session = plugin.stream(
            "invoke_llm",
            chat_data(PROVIDER, "qwen-plus", credentials(f"/_fault/flood-{FLOOD_SECONDS:g}"), "flood"),
            timeout=FLOOD_SECONDS + 60,
        )
        session.keep_items = False
        flood = Flood()
        consumer = threading.Thread(target=_consume, args=(session, flood))
        consumer.start()
        started = time.monotonic()

        paced_gaps: list[float] = []
        paced = 0
        words = " ".join(f"w{i}" for i in range(PACED_WORDS - 1))
        while time.monotonic() < started + FLOOD_SECONDS - 0.5:
            result = plugin.collect(
                "invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials("/_fault/slow-chunks-20"), words)
            ).raise_for_error()
            assert "".join(i["delta"]["message"]["content"] or "" for i in result.items) == f"echo: {words}"
            paced_gaps += _gaps([result.sent_at, *result.item_times])
            paced += 1
        consumer.join(timeout=FLOOD_SECONDS + 60)
        beats = [t for t in plugin.heartbeat_times if started <= t <= flood.ended_at]
        heartbeat_gaps = _gaps([started, *beats, flood.ended_at])

    assert flood.finish_reason == "stop" and flood.unexpected == []
    assert flood.chunks > 1000 * FLOOD_SECONDS, "the flood relayed thousands of chunks a second"
    assert paced >= 1
    assert max(paced_gaps) <= PACED_GAP_BOUND, f"a paced stream stalled {max(paced_gaps):.2f} s during the flood"
    assert max(heartbeat_gaps) <= 2 * HEARTBEAT_INTERVAL, f"heartbeats {max(heartbeat_gaps):.2f} s apart"


@contextlib.contextmanager
def _ticking() -> Iterator[list[float]]:
    """A greenlet noting the time every 10 ms while the block runs; yields its notes."""
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    beat = gevent.spawn(ticker)
    try:
        gevent.sleep(0.05)
        yield ticks
        gevent.sleep(0.02)
    finally:
        beat.kill()


def _least_hold(work: Callable[[], None], attempts: int = 3) -> list[float]:
    """The longest hub hold of each run of `work`, run again while a hold reaches the bound.

    A hold the code makes recurs in every run; on a loaded 2-core machine the OS alone sometimes
    keeps the ticker's thread off the CPU past 100 ms, once, so one run under the bound decides.
    """
    held: list[float] = []
    while len(held) < attempts and (not held or held[-1] >= HUB_HOLD_BOUND):
        with _ticking() as ticks:
            work()
        held.append(max(_gaps(ticks)))
    return held


def test_counting_the_tokens_of_a_10_mb_prompt_holds_the_hub_under_100_ms(gateway: Gateway) -> None:
    llm = adapter("llm")
    llm.get_num_tokens("qwen-plus", gateway.credentials(), [UserPromptMessage(content="hi")])  # LiteLLM loaded
    prompt = ("Dify plugins share one process; 所有会话共用一个进程。 " * 250_000)[:10_000_000]
    counts: list[int] = []

    def count() -> None:
        counts.append(llm.get_num_tokens("qwen-plus", gateway.credentials(), [UserPromptMessage(content=prompt)]))

    held = _least_hold(count)
    assert counts[-1] > 1_000_000
    _assert_under_bound(held)


def test_inflating_a_gzip_bomb_to_the_read_bound_holds_the_hub_under_100_ms(gateway: Gateway) -> None:
    llm = adapter("llm")
    messages = [UserPromptMessage(content="a b c")]
    list(llm.invoke("qwen-plus", gateway.credentials(), messages, {}, stream=False))  # LiteLLM loaded

    def inflate() -> None:
        with pytest.raises(InvokeBadRequestError, match="larger than"):
            list(llm.invoke("qwen-plus", gateway.credentials("/_fault/gzip-bomb-1024"), messages, {}, stream=False))

    _assert_under_bound(_least_hold(inflate))


def _separate(base_url: str, faults: str, **fields: str) -> dict[str, str]:
    """Credentials for the emulator of its own process (`separate_gateway`): its writing of a big
    answer must not run on the test's hub, whose holds are measured."""
    return {"endpoint_url": f"{base_url}{faults}/v1", "api_key": "sk-any", "max_retries": "0", **fields}


# The answers below are read whole and parsed before the plugin finds them too large for one
# message to Dify: what is measured is the read, the parse and the size check.


def test_reading_a_12_mb_blocking_chat_answer_holds_the_hub_under_100_ms(separate_gateway: str) -> None:
    llm = adapter("llm")
    messages = [UserPromptMessage(content="a b c")]
    list(llm.invoke("qwen-plus", _separate(separate_gateway, ""), messages, {}, stream=False))  # LiteLLM loaded
    credentials = _separate(separate_gateway, f"/_fault/big-{TWELVE_MB}")

    def read() -> None:
        with pytest.raises(InvokeBadRequestError, match="-byte message to Dify"):
            list(llm.invoke("qwen-plus", credentials, messages, {}, stream=False))

    _assert_under_bound(_least_hold(read))


def test_reading_600k_floats_of_embeddings_holds_the_hub_under_100_ms(separate_gateway: str) -> None:
    embedder = adapter("text-embedding")
    credentials = _separate(separate_gateway, "/_fault/dims-6000", route_preset="openai-embeddings")
    texts = [f"text {i}" for i in range(100)]

    def read() -> None:
        with pytest.raises(InvokeBadRequestError, match="100 vectors of 6,000 dimensions"):
            embedder.invoke("team-embedder", credentials, texts)

    embedder.invoke("team-embedder", _separate(separate_gateway, "", route_preset="openai-embeddings"), ["warm"])
    _assert_under_bound(_least_hold(read))


def test_reading_a_12_mb_transcript_holds_the_hub_under_100_ms(separate_gateway: str) -> None:
    transcriber = adapter("speech2text")
    credentials = _separate(separate_gateway, f"/_fault/big-{TWELVE_MB}")

    def read() -> None:
        with pytest.raises(InvokeBadRequestError, match="the transcript"):
            transcriber.invoke(TRANSCRIBER, credentials, io.BytesIO(silence_wav()))

    transcriber.invoke(TRANSCRIBER, _separate(separate_gateway, ""), io.BytesIO(silence_wav()))  # LiteLLM loaded
    _assert_under_bound(_least_hold(read))


def _assert_under_bound(held: list[float]) -> None:
    assert min(held) < HUB_HOLD_BOUND, f"the hub was held {', '.join(f'{h:.3f}' for h in held)} s"
