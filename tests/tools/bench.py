"""`make bench`: the plugin as Dify drives it, on recorded real answers, against a raw client in the same run.

The plugin runs as the daemon runs it (`python -m main`, INSTALL_METHOD=local, stdio) against the
gateway emulator in its own processes, once over plain HTTP and once over TLS (a trustme CA handed
to the plugin as SSL_CERT_FILE). Chat answers are answers recorded from real servers
(../shared/real_traces, see tests/real_traces.py): DashScope's compatible-mode JSON for blocking
chats, and four recorded streams scaled to N chunks with their exact bytes
(tests/tools/recorded_shapes.py), served by the emulator's `/_recorded/<file>/`; rerank and
speech-to-text answers are recorded ones too, embeddings and speech the emulator's own. The same
requests, the plugin's exact bytes captured on a first call, are sent by a raw keep-alive httpx
client from this process: the physical limit every figure is compared with, the raw client reading
the same answer bytes (parsing each JSON answer and each stream event). The one exception is the
64-text embedding: the plugin sends DashScope-sized batches of 10, the raw client ONE request with
all 64 texts. A do-nothing SDK plugin (tests/tools/sdk_floor.py) driven the same way is the stdio
floor, and the reference for start-up.

The plugin and the raw client take turns call by call, in rounds (who goes first alternates and
flips every round), and medians are reported, because the machine is small and shared. Nothing here
asserts timings; the tables say which targets hold. Every figure is printed per shape and
transport first, then the linearity table, then the table of issue 14's rows (what the README
quotes) and the machine line; all of it is written to bench-results/latest.md. The plugin's peak
RSS under load comes from tests/tools/load.py (make load, its flood shortened) in a child process.

    python -m tests.tools.bench [--rounds 5] [--spawns 5] [--load-flood 10] [--plugin-dir DIR] [--out FILE]

`--plugin-dir` benchmarks another checkout of the plugin (e.g. a `git worktree` of an older commit)
with this benchmark and this emulator: before/after numbers from one tool.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from adapters.models.batches import MAX_IN_FLIGHT
from tests.emulator import Consumer, GatewayEmulator, serve
from tests.emulator.process import emulator_process as separate_emulator
from tests.stdio_driver import PluginProcess, SessionResult, prompt_message
from tests.tools.recorded_shapes import Shape, write_scaled, write_verbatim
from tests.tools.sdk_floor import floor_chat, write_floor_plugin

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "aliyun_ai_gateway"
KEY = "sk-bench"
CHAT_MODEL = "qwen-plus"
EMBEDDING_MODEL = "text-embedding-v3"  # OpenAI-compatible route through LiteLLM; max_chunks 10, 1024 dimensions
# A customizable embedding model of 64 dimensions: 2,048 of its vectors still fit in one message to
# the daemon, so per-text cost can be followed from 64 to 2,048 texts.
SMALL_EMBEDDING_MODEL = "bench-embedding-64d"
SMALL_EMBEDDING_FORM = {"dimensions": "64", "max_chunks": "10"}
RERANK_MODEL = "gte-rerank-v2"
STT_MODEL = "whisper-large-v3"
TTS_MODEL = "tts-1"
STREAM_CHUNKS = 500
EMBEDDING_TEXTS = 64
# The sizes the linearity table follows the cost per chunk and per text through (HTTP only).
SCALED_CHUNKS = (STREAM_CHUNKS, 5_000, 20_000)
SCALED_TEXTS = (EMBEDDING_TEXTS, 512, 2_048)
BLOCKING_ANSWER = "ds-qwenplus-json.json"
RERANK_ANSWER = "ds-native-gte-rerank-v2.json"  # ranks documents 0 and 2 of three
TRANSCRIPTION_ANSWER = "openai-transcription-doc.json"
STREAM_SHAPES = (
    Shape("dashscope-text", "ds-qwen3max-text-stream.sse", "DashScope compatible mode, null usage/logprobs"),
    Shape("openai-text", "openai-gpt4o-text-stream.sse", "OpenAI, include_usage, obfuscation padding"),
    Shape("dashscope-reasoning", "ds-qwen3max-reasoning-stream.sse", "DashScope qwen3-max thinking"),
    Shape("deepseek-tool-call", "deepseek-reasoner-toolcall-stream.sse", "DeepSeek reasoning, then a tool call"),
)
LONG_SHAPE = STREAM_SHAPES[0]
CLOCK_TICK = 1 / os.sysconf("SC_CLK_TCK")
# The plugin process inherits this environment, minus what would change how it connects.
_ENV_DROP = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "REQUESTS_CA_BUNDLE")


# --------------------------------------------------------------------------- statistics


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=10, method="inclusive")[8]


@dataclass
class Samples:
    plugin: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.plugin) / median(self.raw)

    @property
    def added_ms(self) -> float:
        return (median(self.plugin) - median(self.raw)) * 1000


# --------------------------------------------------------------------------- processes


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK


def proc_status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.key))
    for number, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(files.cert), append=number > 0)
    return files


@contextlib.contextmanager
def emulator_process(tls: TlsFiles | None, *options: str) -> Iterator[str]:
    """`python -m tests.emulator` in its own process, so it does not share the raw client's GIL."""
    arguments = ["--auth", "api_key", "--api-key", KEY, *options]
    if tls is not None:
        arguments += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    with separate_emulator(*arguments) as base_url:
        yield base_url


def plugin_env(tls: TlsFiles) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update({"INSTALL_METHOD": "local", "SSL_CERT_FILE": str(tls.ca)})
    return env


def start_plugin(root: Path, env: dict[str, str]) -> PluginProcess:
    return PluginProcess.start(root, env=env, inherit_env=False)


# --------------------------------------------------------------------------- requests


def credentials(base_url: str, recorded: str | None = None, **form: str) -> dict[str, str]:
    """Gateway credentials; `recorded` makes the emulator answer with that file (tests/emulator/recorded.py)."""
    prefix = f"/_recorded/{recorded}" if recorded else ""
    return {"endpoint_url": f"{base_url}{prefix}/v1", "api_key": KEY, **form}


def chat_data(credentials: dict[str, str], *, stream: bool, model: str = CHAT_MODEL) -> dict:
    return {
        "provider": PROVIDER,
        "model_type": "llm",
        "model": model,
        "credentials": credentials,
        "prompt_messages": [prompt_message("user", "hello from the benchmark")],
        "model_parameters": {"temperature": 0.1},
        "stream": stream,
    }


def bench_texts(count: int) -> list[str]:
    return [f"benchmark passage {i}: the gateway embeds this text for retrieval" for i in range(count)]


def embedding_data(credentials: dict[str, str], texts: list[str], model: str = EMBEDDING_MODEL) -> dict:
    return {
        "provider": PROVIDER,
        "model_type": "text-embedding",
        "model": model,
        "credentials": credentials,
        "texts": texts,
        "input_type": "document",
    }


def rerank_data(credentials: dict[str, str]) -> dict:
    docs = [
        "文本排序模型广泛用于搜索引擎和推荐系统中，它们根据文本相关性对候选文本进行排序",
        "量子计算是计算科学的一个前沿领域",
        "预训练语言模型的发展给文本排序模型带来了新的进展",
    ]
    query = "什么是文本排序模型"
    return {"provider": PROVIDER, "model": RERANK_MODEL, "credentials": credentials, "query": query, "docs": docs}


def silent_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    data = b"\x00\x00" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def transcription_data(credentials: dict[str, str]) -> dict:
    return {"provider": PROVIDER, "model": STT_MODEL, "credentials": credentials, "file": silent_wav()}


def speech_data(credentials: dict[str, str]) -> dict:
    return {
        "provider": PROVIDER,
        "model": TTS_MODEL,
        "credentials": credentials,
        "content_text": "Hello from Alibaba Cloud AI Gateway, read aloud for the benchmark.",
        "voice": "alloy",
        "tenant_id": "bench",
    }


@dataclass(frozen=True)
class Wire:
    """One request as the plugin sent it, replayed by the raw client."""

    path: str
    body: bytes
    content_type: str


def one_request(batches: list[Wire]) -> Wire:
    """The embedding batches the plugin sent, as ONE request of all their texts (httpx's JSON encoding)."""
    first = json.loads(batches[0].body)
    first["input"] = [text for wire in batches for text in json.loads(wire.body)["input"]]
    body = json.dumps(first, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return Wire(batches[0].path, body, batches[0].content_type)


@dataclass
class Call:
    """A request-and-answer scenario: the plugin's invocation, and the requests the raw client sends for it."""

    key: str
    label: str
    action: str
    data: Callable[[str], dict]  # base URL -> the invocation's data
    repeat: int  # calls per round and method
    merge: bool = False  # the raw client sends the plugin's requests as one (embeddings)
    long: bool = False  # measured over plain HTTP only (the scaling rows)
    wires: list[Wire] = field(default_factory=list)


@dataclass
class Stream:
    """A recorded stream scaled to `chunks` events, streamed to Dify."""

    shape: Shape
    chunks: int
    repeat: int
    served: str = ""  # the file name the emulator serves it by
    wire: Wire | None = None

    @property
    def key(self) -> str:
        return f"{self.shape.name}-{self.chunks}"

    @property
    def long(self) -> bool:
        return self.chunks > STREAM_CHUNKS

    def data(self, base_url: str) -> dict:
        return chat_data(credentials(base_url, self.served), stream=True)


def scenarios(args: argparse.Namespace) -> tuple[list[Call], list[Stream]]:
    calls = [
        Call("chat", "blocking chat (recorded DashScope JSON)", "invoke_llm", lambda url: chat_data(
            credentials(url, BLOCKING_ANSWER), stream=False), args.chats),
        Call("embed", f"embeddings, {EMBEDDING_TEXTS} texts × 1024 dimensions (raw: 1 request)",
             "invoke_text_embedding", lambda url: embedding_data(credentials(url), bench_texts(EMBEDDING_TEXTS)),
             args.embeds, merge=True),
        Call("rerank", "rerank, 3 documents (recorded DashScope answer)", "invoke_rerank",
             lambda url: rerank_data(credentials(url, RERANK_ANSWER)), args.chats // 2),
        Call("stt", "speech-to-text, 0.5 s WAV (recorded OpenAI answer)", "invoke_speech2text",
             lambda url: transcription_data(credentials(url, TRANSCRIPTION_ANSWER)), args.chats // 2),
        Call("tts", "text-to-speech, one sentence (emulator audio)", "invoke_tts",
             lambda url: speech_data(credentials(url)), args.chats // 2),
    ]  # fmt: skip
    calls += [
        Call(f"embed-64d-{n}", f"embeddings, {n:,} texts × 64 dimensions", "invoke_text_embedding",
             partial(_small_embedding, n), args.embeds if n == EMBEDDING_TEXTS else 1, merge=True, long=True)
        for n in SCALED_TEXTS
    ]  # fmt: skip
    streams = [Stream(shape, STREAM_CHUNKS, args.streams) for shape in STREAM_SHAPES]
    streams += [Stream(LONG_SHAPE, n, 1) for n in SCALED_CHUNKS[1:]]
    return calls, streams


def _small_embedding(texts: int, base_url: str) -> dict:
    return embedding_data(credentials(base_url, **SMALL_EMBEDDING_FORM), bench_texts(texts), SMALL_EMBEDDING_MODEL)


def prepare_answers(folder: Path, streams: list[Stream]) -> None:
    folder.mkdir()
    for answer in (BLOCKING_ANSWER, RERANK_ANSWER, TRANSCRIPTION_ANSWER):
        write_verbatim(folder, answer)
    for stream in streams:
        stream.served = write_scaled(folder, stream.shape, stream.chunks)


def capture_requests(plugin: PluginProcess, recorded: Path, calls: list[Call], streams: list[Stream]) -> None:
    """One call of each scenario against an in-process emulator that records what arrives."""
    emulator = GatewayEmulator(consumers=[Consumer(name="bench", api_key=KEY)], recorded_dir=recorded)
    with serve(emulator) as base_url:
        for call in calls:
            emulator.clear()
            plugin.collect(call.action, call.data(base_url), timeout=120).raise_for_error()
            wires = [Wire(r.path, r.body, r.headers.get("content-type", "")) for r in emulator.received]
            call.wires = [one_request(wires)] if call.merge else wires
        for stream in streams:
            emulator.clear()
            result = plugin.collect("invoke_llm", stream.data(base_url), timeout=120).raise_for_error()
            if not result.items:
                raise RuntimeError(f"the {stream.key} stream came back empty")
            received = emulator.received[-1]
            stream.wire = Wire(received.path, received.body, received.headers.get("content-type", ""))


class RawClient:
    """The physical limit: one keep-alive httpx client sending the plugin's exact bytes."""

    def __init__(self, base_url: str, verify: ssl.SSLContext | bool) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        self.client = httpx.Client(base_url=base_url, headers=headers, verify=verify, trust_env=False, timeout=120)

    def call(self, wires: list[Wire]) -> float:
        """Seconds to send each request and read its whole answer (JSON answers parsed)."""
        started = time.perf_counter()
        for wire in wires:
            response = self.client.post(wire.path, content=wire.body, headers={"Content-Type": wire.content_type})
            response.raise_for_status()
            if response.headers.get("content-type", "").startswith("application/json"):
                response.json()
        return time.perf_counter() - started

    def stream(self, wire: Wire) -> tuple[float, float, int]:
        """(seconds to the first event, to [DONE], events): an SSE answer read line by line."""
        started = time.perf_counter()
        first, events = math.nan, 0
        headers = {"Content-Type": wire.content_type}
        with self.client.stream("POST", wire.path, content=wire.body, headers=headers) as response:
            response.raise_for_status()
            lines = response.iter_lines()
            for line in lines:
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                json.loads(payload)
                if not events:
                    first = time.perf_counter() - started
                events += 1
            total = time.perf_counter() - started
            for _ in lines:  # the end of the body, untimed: the connection stays open for the next request
                pass
        return first, total, events

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- measurements


def first_item_seconds(result: SessionResult) -> float:
    """Seconds from writing the request to the first answer line arriving (before it is parsed)."""
    result.raise_for_error()
    return result.item_times[0] - result.sent_at


def last_item_seconds(result: SessionResult) -> float:
    result.raise_for_error()
    return result.item_times[-1] - result.sent_at


@dataclass
class CpuMeter:
    """CPU seconds a process spends inside measured sections, and the wall time they took."""

    pid: int
    cpu: float = 0.0
    wall: float = 0.0

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        cpu, wall = proc_cpu_seconds(self.pid), time.monotonic()
        try:
            yield
        finally:
            self.cpu += proc_cpu_seconds(self.pid) - cpu
            self.wall += time.monotonic() - wall

    def per_chunk_ms(self, idle_rate: float, chunks: int) -> float:
        return (self.cpu - idle_rate * self.wall) / chunks * 1000


def idle_cpu_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second the process burns while idle (heartbeats, its watchdog)."""
    cpu, wall = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (proc_cpu_seconds(pid) - cpu) / (time.monotonic() - wall)


@dataclass
class StreamSamples:
    first: Samples = field(default_factory=Samples)
    total: Samples = field(default_factory=Samples)
    cpu: CpuMeter = field(default_factory=lambda: CpuMeter(0))
    dify_chunks: int = 0

    def per_chunk_ms(self, idle_rate: float, chunks: int) -> float:
        return self.cpu.per_chunk_ms(idle_rate, len(self.total.plugin) * chunks)


@dataclass
class Transport:
    """One plain-HTTP or TLS setup: its emulator, a raw client and the samples of each scenario."""

    name: str
    base_url: str
    raw: RawClient
    calls: dict[str, Samples] = field(default_factory=dict)
    streams: dict[str, StreamSamples] = field(default_factory=dict)

    def reset(self, pid: int, calls: list[Call], streams: list[Stream]) -> None:
        self.calls = {call.key: Samples() for call in calls}
        self.streams = {stream.key: StreamSamples(cpu=CpuMeter(pid)) for stream in streams}


def _plugin_call(plugin: PluginProcess, call: Call, data: dict, samples: Samples) -> None:
    # The answer's last line is when Dify has all of it (one line, but for speech's audio pieces).
    samples.plugin.append(last_item_seconds(plugin.collect(call.action, data, timeout=120)))


def _raw_call(raw: RawClient, call: Call, samples: Samples) -> None:
    samples.raw.append(raw.call(call.wires))


def _plugin_stream(plugin: PluginProcess, data: dict, measured: StreamSamples) -> None:
    with measured.cpu.section():
        result = plugin.collect("invoke_llm", data, timeout=120)
    measured.first.plugin.append(first_item_seconds(result))
    measured.total.plugin.append(last_item_seconds(result))
    measured.dify_chunks = len(result.items)


def _raw_stream(raw: RawClient, stream: Stream, measured: StreamSamples) -> None:
    assert stream.wire is not None
    first, total, events = raw.stream(stream.wire)
    if events < stream.chunks:
        raise RuntimeError(f"the raw {stream.key} stream had {events} events")
    measured.first.raw.append(first)
    measured.total.raw.append(total)


def run_round(
    plugin: PluginProcess, t: Transport, calls: list[Call], streams: list[Stream], *, flip: bool, warm_up: bool = False
) -> None:
    """Each scenario's calls, the plugin's and the raw client's taking turns one by one (who goes first
    alternates, and flips every round), so a burst of load on this shared machine hits both sides alike."""
    pairs: list[tuple[Callable[[], None], Callable[[], None], int]] = []
    for call in calls:
        if not call.long or t.name == "HTTP":
            samples, count = t.calls[call.key], 1 if warm_up else call.repeat
            pairs.append((partial(_plugin_call, plugin, call, call.data(t.base_url), samples),
                          partial(_raw_call, t.raw, call, samples), count))  # fmt: skip
    for stream in streams:
        if not stream.long or t.name == "HTTP":
            measured, count = t.streams[stream.key], 1 if warm_up else stream.repeat
            pairs.append((partial(_plugin_stream, plugin, stream.data(t.base_url), measured),
                          partial(_raw_stream, t.raw, stream, measured), count))  # fmt: skip
    for plugin_side, raw_side, count in pairs:
        for turn in range(count):
            for run in (raw_side, plugin_side) if (turn % 2 == 1) != flip else (plugin_side, raw_side):
                run()


@dataclass
class Startup:
    heartbeat: Samples = field(default_factory=Samples)  # raw = the do-nothing SDK plugin
    answer: Samples = field(default_factory=Samples)
    floor_rss_mib: list[float] = field(default_factory=list)


def measure_startup(spawns: int, plugin_dir: Path, floor_dir: Path, env: dict[str, str], base_url: str) -> Startup:
    """Spawn → first heartbeat, and spawn → first answer to a blocking chat sent at that heartbeat
    (as the daemon sends requests as soon as it counts the plugin as started)."""
    out = Startup()
    for number in range(spawns):
        kinds = [("plugin", plugin_dir), ("floor", floor_dir)]
        for kind, root in kinds if number % 2 == 0 else kinds[::-1]:
            with start_plugin(root, env) as process:
                heartbeat = process.startup_seconds_to_heartbeat
                if kind == "plugin":
                    data = chat_data(credentials(base_url, BLOCKING_ANSWER), stream=False)
                else:
                    data = floor_chat(1, stream=False)
                result = process.collect("invoke_llm", data)
                result.raise_for_error()
                answer = result.item_times[0] - process.spawned_at
                (out.heartbeat.plugin if kind == "plugin" else out.heartbeat.raw).append(heartbeat)
                (out.answer.plugin if kind == "plugin" else out.answer.raw).append(answer)
                if kind == "floor":
                    out.floor_rss_mib.append(proc_status_mib(process.pid, "VmHWM"))
    return out


@dataclass
class Floor:
    chat: list[float] = field(default_factory=list)
    stream_total: list[float] = field(default_factory=list)
    cpu_per_chunk_ms: float = math.nan


def measure_floor(floor_dir: Path, env: dict[str, str], rounds: int, chats: int, streams: int) -> Floor:
    """The do-nothing SDK plugin: one-chunk blocking answers and 500 canned chunks, as above."""
    out = Floor()
    with start_plugin(floor_dir, env) as floor:
        for _ in range(5):
            floor.collect("invoke_llm", floor_chat(STREAM_CHUNKS, stream=True))
        meter = CpuMeter(floor.pid)
        for _ in range(rounds):
            out.chat += [
                first_item_seconds(floor.collect("invoke_llm", floor_chat(1, stream=False))) for _ in range(chats)
            ]
            for _ in range(streams):
                with meter.section():
                    result = floor.collect("invoke_llm", floor_chat(STREAM_CHUNKS, stream=True))
                out.stream_total.append(last_item_seconds(result))
        out.cpu_per_chunk_ms = meter.per_chunk_ms(idle_cpu_rate(floor.pid, 1.0), rounds * streams * STREAM_CHUNKS)
    return out


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    metric: str
    raw: str
    plugin: str
    target: str = "—"
    ok: bool | None = None


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.2f} ms (p90 {p90(values) * 1000:.2f})"


def _s(values: list[float]) -> str:
    return f"{median(values):.2f} s (p90 {p90(values):.2f})"


EMBEDDING_REQUESTS = math.ceil(EMBEDDING_TEXTS / 10)  # text-embedding-v3's max_chunks
FLAT = 1.2  # "flat": the cost per unit grows by at most a fifth from the smallest case to a larger one


def _range(values: list[float], unit: str, digits: int = 2, sign: str = "") -> str:
    """`low to high` (one figure when they round alike); sign "+" shows every figure's sign."""
    low, high = (f"{value:{sign}.{digits}f}" for value in (min(values), max(values)))
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"


@dataclass
class Results:
    startup: Startup
    floor: Floor
    transports: list[Transport]
    calls: list[Call]
    streams: list[Stream]
    idle_rate: float
    peak_rss_mib: float
    final_rss_mib: float
    load_peak_rss_mib: float
    chunk_costs: list[dict[str, Any]]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def short_streams(self) -> list[Stream]:
        return [stream for stream in self.streams if not stream.long]

    def detail_rows(self) -> list[Row]:
        """Every scenario on each transport, with its own medians."""
        hb, answer = self.startup.heartbeat, self.startup.answer
        rows = [
            Row("start-up: spawn → first heartbeat (raw: the SDK floor)", _s(hb.raw), _s(hb.plugin), "≤ 0.8 s",
                median(hb.plugin) <= 0.8),
            Row("start-up: spawn → first answer, a blocking chat sent at the heartbeat (raw: the SDK floor)",
                _s(answer.raw), _s(answer.plugin), "≤ 3.0 s", median(answer.plugin) <= 3.0),
        ]  # fmt: skip
        labels = {call.key: call for call in self.calls}
        for t in self.transports:
            chat = t.calls["chat"]
            rows.append(Row(f"{labels['chat'].label}, {t.name}", _ms(chat.raw), f"{_ms(chat.plugin)}, "
                            f"{chat.added_ms:+.2f} ms", "≤ raw + 1.0 ms", chat.added_ms <= 1.0))  # fmt: skip
            for stream in self.short_streams:
                s = t.streams[stream.key]
                per_chunk = s.per_chunk_ms(self.idle_rate, stream.chunks)
                name = f"{stream.chunks}-chunk stream, {stream.shape.name} ({stream.shape.what}), {t.name}"
                rows += [
                    Row(f"{name}: first chunk", _ms(s.first.raw), f"{_ms(s.first.plugin)}, {s.first.added_ms:+.2f} ms",
                        "≤ raw + 2 ms", s.first.added_ms <= 2.0),
                    Row(f"{name}: whole stream", _ms(s.total.raw), f"{_ms(s.total.plugin)}, {s.total.ratio:.2f}x",
                        "≤ 1.8x raw", s.total.ratio <= 1.8),
                    Row(f"{name}: plugin CPU per chunk ({s.dify_chunks} Dify chunks)", "—", f"{per_chunk:.4f} ms",
                        "≤ 0.04 ms", per_chunk <= 0.04),
                ]  # fmt: skip
            embed = t.calls["embed"]
            rows.append(Row(f"{labels['embed'].label}, {t.name}", _ms(embed.raw),
                            f"{_ms(embed.plugin)} ({EMBEDDING_REQUESTS} requests), {embed.ratio:.2f}x", "≤ 1.5x raw",
                            embed.ratio <= 1.5))  # fmt: skip
            for key in ("rerank", "stt", "tts"):
                s = t.calls[key]
                rows.append(Row(f"{labels[key].label}, {t.name}", _ms(s.raw), f"{_ms(s.plugin)}, {s.added_ms:+.2f} ms",
                                "≤ raw + 1.0 ms", s.added_ms <= 1.0))  # fmt: skip
        http = self.transports[0]
        for stream in self.streams:
            if stream.long:
                s = http.streams[stream.key]
                rows.append(Row(f"{stream.chunks:,}-chunk stream, {stream.shape.name}, HTTP: whole stream",
                                _ms(s.total.raw), f"{_ms(s.total.plugin)}, {s.total.ratio:.2f}x"))  # fmt: skip
        for n in SCALED_TEXTS:
            s = http.calls[f"embed-64d-{n}"]
            rows.append(Row(f"embeddings, {n:,} texts × 64 dimensions, HTTP (raw: 1 request)", _ms(s.raw),
                            f"{_ms(s.plugin)}, {s.ratio:.2f}x"))  # fmt: skip
        rows += [
            Row("stdio floor: blocking one-chunk answer (do-nothing SDK plugin)", "—", _ms(self.floor.chat)),
            Row(f"stdio floor: {STREAM_CHUNKS}-chunk stream (do-nothing SDK plugin)", "—",
                f"{_ms(self.floor.stream_total)}, CPU {self.floor.cpu_per_chunk_ms:.4f} ms/chunk"),
        ]  # fmt: skip
        return rows

    def linearity_rows(self) -> list[Row]:
        """Cost per chunk and per text at growing sizes (HTTP): `plugin` holds the figures, `raw` the raw client's."""
        http = self.transports[0]
        by_size = {s.chunks: s for s in self.streams if s.shape == LONG_SHAPE}
        measured = [(http.streams[by_size[n].key], n) for n in SCALED_CHUNKS]
        cpu = [s.per_chunk_ms(self.idle_rate, n) for s, n in measured]
        stream_plugin = [median(s.total.plugin) / n * 1000 for s, n in measured]
        stream_raw = [median(s.total.raw) / n * 1000 for s, n in measured]
        texts = [(http.calls[f"embed-64d-{n}"], n) for n in SCALED_TEXTS]
        text_plugin = [median(s.plugin) / n * 1000 for s, n in texts]
        text_raw = [median(s.raw) / n * 1000 for s, n in texts]
        chunks = " / ".join(f"{n:,}" for n in SCALED_CHUNKS) + f" chunks ({LONG_SHAPE.name})"
        sizes = " / ".join(f"{n:,}" for n in SCALED_TEXTS) + " texts × 64 dimensions"

        def row(metric: str, plugin: list[float], raw: list[float] | None, digits: int) -> Row:
            growth = max(plugin[1:]) / plugin[0]
            shown = " / ".join(f"{v:.{digits}f}" for v in plugin) + " ms"
            raw_shown = " / ".join(f"{v:.{digits}f}" for v in raw) + " ms" if raw else "—"
            return Row(metric, raw_shown, f"{shown}, {growth:.2f}x", f"≤ {FLAT}x", growth <= FLAT)

        return [
            row(f"plugin CPU per stream chunk, {chunks}", cpu, None, 4),
            row(f"stream time per chunk, {chunks}", stream_plugin, stream_raw, 4),
            row(f"embedding time per text, {sizes}", text_plugin, text_raw, 3),
        ]

    def summary_rows(self) -> list[Row]:
        """The rows of issue 14's table, each over every shape and transport it covers."""
        ts = self.transports
        names = " / ".join(t.name for t in ts)
        chats = [t.calls["chat"] for t in ts]
        streams = [(t, s, t.streams[s.key]) for t in ts for s in self.short_streams]
        ratios = [m.total.ratio for _, _, m in streams]
        cpu = [m.per_chunk_ms(self.idle_rate, s.chunks) for _, s, m in streams]
        worst = max(streams, key=lambda item: item[2].total.ratio)
        first = [m.first.added_ms for _, _, m in streams]
        embeds = [t.calls["embed"] for t in ts]
        hb, answer = self.startup.heartbeat, self.startup.answer
        others = [[t.calls[key] for t in ts] for key in ("rerank", "stt", "tts")]
        return [
            Row(f"blocking chat, overhead over raw ({names})", " / ".join(f"{median(c.raw) * 1000:.2f}" for c in chats)
                + " ms", " / ".join(f"{c.added_ms:+.2f}" for c in chats) + " ms", "≤ 1.0 / 1.0 ms",
                all(c.added_ms <= 1.0 for c in chats)),
            Row(f"{STREAM_CHUNKS}-chunk stream of recorded shapes, total ({len(self.short_streams)} shapes × {names})",
                "1x (" + _range([median(m.total.raw) * 1000 for _, _, m in streams], " ms", 1) + ")",
                f"{_range(ratios, 'x')} (worst {worst[1].shape.name}, {worst[0].name}); "
                f"{_range(cpu, ' ms', 3)} plugin CPU per chunk", "≤ 1.8x, ≤ 0.04 ms plugin CPU per chunk",
                max(ratios) <= 1.8 and max(cpu) <= 0.04),
            Row("first chunk, added (same streams)",
                "0 (" + _range([median(m.first.raw) * 1000 for _, _, m in streams], " ms", 1) + ")",
                _range(first, " ms", sign="+"), "≤ 2 ms", max(first) <= 2.0),
            Row(f"{EMBEDDING_TEXTS}-text embedding (DashScope caps batches at 10; {names})",
                "1 request: " + " / ".join(f"{median(e.raw) * 1000:.1f}" for e in embeds) + " ms",
                f"{EMBEDDING_REQUESTS} requests, {MAX_IN_FLIGHT} at a time: "
                + " / ".join(f"{e.ratio:.2f}x" for e in embeds), "≤ 1.5x one raw 64-text request",
                all(e.ratio <= 1.5 for e in embeds)),
            Row("spawn → first heartbeat / first answer",
                f"SDK floor: {median(hb.raw):.2f} / {median(answer.raw):.2f} s",
                f"{median(hb.plugin):.2f} / {median(answer.plugin):.2f} s", "≤ 0.8 / 3.0 s",
                median(hb.plugin) <= 0.8 and median(answer.plugin) <= 3.0),
            Row("peak RSS after the bench / under load (100 concurrent streams)",
                f"SDK floor: {median(self.startup.floor_rss_mib):.0f} MiB",
                f"{self.peak_rss_mib:.0f} / {self.load_peak_rss_mib:.0f} MiB", "≤ 256 / 300 MiB",
                self.peak_rss_mib <= 256 and self.load_peak_rss_mib <= 300),
            Row(f"rerank / speech-to-text / text-to-speech, overhead over raw ({names})",
                "; ".join(" / ".join(f"{median(s.raw) * 1000:.2f}" for s in samples) + " ms" for samples in others),
                "; ".join(" / ".join(f"{s.added_ms:+.2f}" for s in samples) + " ms" for samples in others),
                "≤ 1.0 ms each", all(s.added_ms <= 1.0 for samples in others for s in samples)),
        ]  # fmt: skip


def _table(rows: list[Row], head: str) -> list[str]:
    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("yes" if ok else "**no**")

    lines = [f"| {head} | raw client | plugin | target | met? |", "|---|---|---|---|---|"]
    return lines + [f"| {r.metric} | {r.raw} | {r.plugin} | {r.target} | {verdict(r.ok)} |" for r in rows]


def render(results: Results, notes: list[str]) -> str:
    """Every figure, then the linearity table, then issue 14's table and the machine line: the part to quote."""
    lines = _table(results.detail_rows(), "metric (details)")
    if results.chunk_costs:
        head = "| recorded stream (in-process) | events | read without LiteLLM | Dify chunks | plugin CPU per event |"
        lines += ["", head, "|---|---|---|---|---|"]
        lines += [f"| {c['file']} | {c['events']} | {c['lean']} | {c['dify_chunks']} | {c['us_per_event']:.1f} µs |"
                  for c in results.chunk_costs]  # fmt: skip
    lines += ["", *notes, "", *_table(results.linearity_rows(), "cost per unit as the work grows (HTTP)"), ""]
    lines += _table(results.summary_rows(), f"metric (same run, loopback, {os.cpu_count()} cores)")
    return "\n".join([*lines, "", machine(results.load_before, results.load_after)]) + "\n"


def chunk_costs(plugin_dir: Path) -> list[dict[str, Any]]:
    """tests/tools/chunk_costs.py in a child process (it installs gevent's patch); none for another checkout."""
    if plugin_dir != REPO_ROOT:
        return []
    command = [sys.executable, "-m", "tests.tools.chunk_costs"]
    done = subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _git_revision(root: Path) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if rev.returncode != 0:
        return f"unknown ({root} is not a git checkout)"
    return rev.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """CPU model, cores, Python and the load average at the start and the end: what the figures were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    start, end = (", ".join(f"{value:.2f}" for value in load) for load in (before, after))
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}; load average (1, 5, 15 min) {start} at the start, {end} at the end."
    )


# --------------------------------------------------------------------------- main


def load_peak_rss_mib(plugin_dir: Path, flood_seconds: float) -> float:
    """The plugin's peak RSS under tests/tools/load.py (`make load`, its flood shortened), in a child process
    (it installs gevent's patch); NaN for another checkout, which may lack that tool."""
    if plugin_dir != REPO_ROOT:
        return math.nan
    command = [sys.executable, "-m", "tests.tools.load", "--flood-seconds", f"{flood_seconds:g}", "--json"]
    done = subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.splitlines()[-1])["peak_rss_mib"])


def run(args: argparse.Namespace) -> Results:
    load_before = os.getloadavg()
    plugin_dir: Path = args.plugin_dir.resolve()
    calls, streams = scenarios(args)
    workdir = Path(tempfile.mkdtemp(prefix="aigw-bench-"))
    try:
        tls = make_tls(workdir)
        floor_dir = write_floor_plugin(workdir / "floor")
        recorded = workdir / "recorded"
        prepare_answers(recorded, streams)
        env = plugin_env(tls)
        options = ("--recorded", str(recorded), "--max-batch", str(SCALED_TEXTS[-1]))
        with emulator_process(None, *options) as http_url, emulator_process(tls, *options) as https_url:
            say(f"emulators at {http_url} and {https_url}; plugin from {plugin_dir}")
            say(f"start-up: {args.spawns} spawns each of the plugin and of the SDK floor ...")
            startup = measure_startup(args.spawns, plugin_dir, floor_dir, env, http_url)
            say("stdio floor ...")
            floor = measure_floor(floor_dir, env, args.rounds, args.chats, args.streams)
            transports = [
                Transport("HTTP", http_url, RawClient(http_url, False)),
                Transport("TLS", https_url, RawClient(https_url, ssl.create_default_context(cafile=str(tls.ca)))),
            ]
            with start_plugin(plugin_dir, env) as plugin:
                capture_requests(plugin, recorded, calls, streams)
                for t in transports:  # warm-up: connections, TLS sessions, first-call lazy imports
                    t.reset(plugin.pid, calls, streams)
                    run_round(plugin, t, calls, streams, flip=False, warm_up=True)
                    t.reset(plugin.pid, calls, streams)
                idle = idle_cpu_rate(plugin.pid, 2.0)
                for number in range(args.rounds):
                    say(f"round {number + 1}/{args.rounds} ...")
                    for t in transports:
                        run_round(plugin, t, calls, streams, flip=number % 2 == 1)
                idle = (idle + idle_cpu_rate(plugin.pid, 2.0)) / 2
                peak_rss, final_rss = proc_status_mib(plugin.pid, "VmHWM"), proc_status_mib(plugin.pid, "VmRSS")
            for t in transports:
                t.raw.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    say("the per-event cost on every recorded stream ...")
    costs = chunk_costs(plugin_dir)
    say(f"make load's rounds, its flood shortened to {args.load_flood:g} s ...")
    load_rss = load_peak_rss_mib(plugin_dir, args.load_flood)
    return Results(startup, floor, transports, calls, streams, idle, peak_rss, final_rss, load_rss, costs,
                   load_before, os.getloadavg())  # fmt: skip


def notes(args: argparse.Namespace, results: Results) -> list[str]:
    command = " ".join(["python -m tests.tools.bench", *sys.argv[1:]]) if sys.argv[1:] else "make bench"
    return [
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, plugin at commit "
        f"{_git_revision(args.plugin_dir)}.",
        f"Medians of {args.rounds} interleaved rounds, p90 in brackets; start-up over {args.spawns} spawns. Plugin: "
        "`python -m main` over stdio as the Dify daemon runs it, timed from writing the request to the answer's "
        "last line arriving. Raw: one keep-alive httpx client in the bench process sending the plugin's exact "
        "request bytes to the same emulator process (plain HTTP, and TLS with a trustme CA) and reading the same "
        "answer bytes. Streams: recorded real streams (../shared/real_traces) scaled to N chunks by repeating their "
        "text and reasoning events with their exact bytes (tests/tools/recorded_shapes.py); plugin CPU from "
        f"/proc/<pid>/stat minus its idle rate ({results.idle_rate * 1000:.2f} ms/s), per stream chunk. "
        f"Plugin RSS at the end: {results.final_rss_mib:.0f} MiB.",
        "SDK floor: a do-nothing dify_plugin model plugin (canned answers, no HTTP, no LiteLLM) driven the same way.",
        "Recorded streams (in-process, tests/tools/chunk_costs.py): each recorded streamed chat answer fed to the "
        "stream relay one event per read, every Dify chunk serialized as the SDK writer sends it; the best of 15 "
        "runs, CPU per event without the network and stdio (a short stream's figure is mostly its closing chunk).",
    ]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--spawns", type=int, default=5, help="start-up measurements of each kind (default 5)")
    parser.add_argument("--chats", type=int, default=40, help="blocking chats per round and transport (default 40)")
    parser.add_argument("--streams", type=int, default=4, help="streams per shape, round and transport (default 4)")
    parser.add_argument("--embeds", type=int, default=4, help="embedding calls per round and transport (default 4)")
    parser.add_argument("--load-flood", type=float, default=10.0,
                        help="seconds of make load's flooding stream beside its rounds (default 10)")  # fmt: skip
    parser.add_argument("--plugin-dir", type=Path, default=REPO_ROOT, help="the plugin to run (default: this one)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results" / "latest.md")
    args = parser.parse_args(argv)
    results = run(args)
    text = render(results, notes(args, results))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    say(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
