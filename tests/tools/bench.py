"""`make bench`: the plugin as Dify drives it, against the physical limit, in the same run.

The plugin runs as the daemon runs it (`python -m main`, INSTALL_METHOD=local, stdio) against the
gateway emulator running in its own processes, once over plain HTTP and once over TLS (a trustme CA
handed to the plugin as SSL_CERT_FILE). The same requests - the plugin's exact bytes, captured on a
first call - are sent by a raw keep-alive httpx client from this process: that is the physical limit
the plugin is compared with. A do-nothing SDK plugin (canned answers, no HTTP, no LiteLLM) driven the
same way gives the stdio floor: what the Dify SDK itself costs before the plugin does anything.

Methods are interleaved in rounds (the order flips every round) and medians are reported, because
the machine is small and shared. Nothing here asserts timings; the table says which targets hold.
The table is printed and written to bench-results/latest.md.

    python -m tests.tools.bench [--rounds 5] [--spawns 5] [--plugin-dir DIR] [--out FILE]

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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.emulator import Consumer, GatewayEmulator, serve
from tests.stdio_driver import PluginProcess, SessionResult, prompt_message

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "aliyun_ai_gateway"
KEY = "sk-bench"
CHAT_MODEL = "qwen-plus"
EMBEDDING_MODEL = "text-embedding-v3"  # OpenAI-compatible route through LiteLLM; max_chunks 10, 1024 dimensions
STREAM_CHUNKS = 500
# The figures in the README were measured on the emulator's first, minimal answer shapes; the
# emulator now answers in DashScope's recorded shapes by default, so the benchmark asks for the
# minimal ones until it is moved to the recorded shapes (and the README's figures with it).
SHAPES = "/_fault/minimal-shapes"
EMBEDDING_TEXTS = 64
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
def emulator_process(tls: TlsFiles | None) -> Iterator[str]:
    """`python -m tests.emulator` in its own process, so it does not share the raw client's GIL."""
    command = [sys.executable, "-m", "tests.emulator", "--port", "0", "--auth", "api_key", "--api-key", KEY]
    if tls is not None:
        command += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the emulator stops at stdin EOF
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plugin_env(tls: TlsFiles) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update({"INSTALL_METHOD": "local", "SSL_CERT_FILE": str(tls.ca)})
    return env


def start_plugin(root: Path, env: dict[str, str]) -> PluginProcess:
    return PluginProcess.start(root, env=env, inherit_env=False)


# --------------------------------------------------------------------------- the stdio floor plugin

_FLOOR_FILES = {
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
    for rel, text in _FLOOR_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def floor_chat(chunks: int, *, stream: bool) -> dict:
    return chat_data({"chunks": str(chunks)}, stream=stream, provider="floor", model="floor")


# --------------------------------------------------------------------------- requests


def chat_data(credentials: dict[str, str], *, stream: bool, provider: str = PROVIDER, model: str = CHAT_MODEL) -> dict:
    return {
        "provider": provider,
        "model_type": "llm",
        "model": model,
        "credentials": credentials,
        "prompt_messages": [prompt_message("user", "hello from the benchmark")],
        "model_parameters": {"temperature": 0.1},
        "stream": stream,
    }


def embedding_data(credentials: dict[str, str], texts: list[str]) -> dict:
    return {
        "provider": PROVIDER,
        "model_type": "text-embedding",
        "model": EMBEDDING_MODEL,
        "credentials": credentials,
        "texts": texts,
        "input_type": "document",
    }


def bench_texts(count: int = EMBEDDING_TEXTS) -> list[str]:
    return [f"benchmark passage {i}: the gateway embeds this text for retrieval" for i in range(count)]


Wire = tuple[str, bytes]  # (path, body) of one request as the plugin sent it


@dataclass
class Captured:
    """The exact requests the plugin sent for each scenario, replayed by the raw client."""

    chat: Wire
    stream: Wire
    embeddings: list[Wire]


def capture_requests(plugin: PluginProcess) -> Captured:
    """One call of each scenario against an in-process emulator that records what arrives."""
    emulator = GatewayEmulator(consumers=[Consumer(name="bench", api_key=KEY)])
    with serve(emulator) as base_url:
        plain = {"endpoint_url": f"{base_url}{SHAPES}/v1", "api_key": KEY}
        chunked = {"endpoint_url": f"{base_url}{SHAPES}/_fault/chunks-{STREAM_CHUNKS}/v1", "api_key": KEY}
        plugin.request("invoke_llm", chat_data(plain, stream=False))
        chat = emulator.received[-1]
        items = plugin.request("invoke_llm", chat_data(chunked, stream=True))
        if len(items) < STREAM_CHUNKS:
            raise RuntimeError(f"the {STREAM_CHUNKS}-chunk stream came back as {len(items)} chunks")
        stream = emulator.received[-1]
        emulator.clear()
        result = plugin.request("invoke_text_embedding", embedding_data(plain, bench_texts()))[-1]
        if len(result["embeddings"]) != EMBEDDING_TEXTS:
            raise RuntimeError("the embedding batch came back incomplete")
        embeddings = [(r.path, r.body) for r in emulator.received]
    return Captured((chat.path, chat.body), (stream.path, stream.body), embeddings)


class RawClient:
    """The physical limit: one keep-alive httpx client sending the plugin's exact bytes."""

    def __init__(self, base_url: str, verify: ssl.SSLContext | bool) -> None:
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        self.client = httpx.Client(base_url=base_url, headers=headers, verify=verify, trust_env=False, timeout=60)

    def chat(self, request: Wire) -> float:
        started = time.perf_counter()
        response = self.client.post(request[0], content=request[1])
        response.raise_for_status()
        response.json()
        return time.perf_counter() - started

    def stream(self, request: Wire) -> tuple[float, float, int]:
        """(seconds to the first event, to [DONE], events): an SSE answer read line by line."""
        started = time.perf_counter()
        first, events = math.nan, 0
        with self.client.stream("POST", request[0], content=request[1]) as response:
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

    def embed(self, requests: list[Wire]) -> float:
        started = time.perf_counter()
        for path, body in requests:
            response = self.client.post(path, content=body)
            response.raise_for_status()
            response.json()
        return time.perf_counter() - started

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
class Transport:
    """One plain-HTTP or TLS setup: its emulator, a raw client and the samples of each scenario."""

    name: str
    base_url: str
    raw: RawClient
    chat: Samples = field(default_factory=Samples)
    ttfc: Samples = field(default_factory=Samples)
    stream_total: Samples = field(default_factory=Samples)
    embed: Samples = field(default_factory=Samples)
    stream_cpu: CpuMeter = field(default_factory=lambda: CpuMeter(0))
    stream_items: int = 0

    def credentials(self, fault: str = "") -> dict[str, str]:
        return {"endpoint_url": f"{self.base_url}{fault}/v1", "api_key": KEY}

    def reset(self, pid: int) -> None:
        self.chat, self.ttfc, self.stream_total, self.embed = Samples(), Samples(), Samples(), Samples()
        self.stream_cpu = CpuMeter(pid)


def run_round(
    plugin: PluginProcess, t: Transport, cap: Captured, *, chats: int, streams: int, embeds: int, flip: bool
) -> None:
    plain, chunked = t.credentials(SHAPES), t.credentials(f"{SHAPES}/_fault/chunks-{STREAM_CHUNKS}")
    texts = bench_texts()

    def plugin_chats() -> None:
        for _ in range(chats):
            t.chat.plugin.append(first_item_seconds(plugin.collect("invoke_llm", chat_data(plain, stream=False))))

    def raw_chats() -> None:
        t.chat.raw += [t.raw.chat(cap.chat) for _ in range(chats)]

    def plugin_streams() -> None:
        for _ in range(streams):
            with t.stream_cpu.section():
                result = plugin.collect("invoke_llm", chat_data(chunked, stream=True))
            t.ttfc.plugin.append(first_item_seconds(result))
            t.stream_total.plugin.append(last_item_seconds(result))
            t.stream_items = len(result.items)

    def raw_streams() -> None:
        for _ in range(streams):
            first, total, events = t.raw.stream(cap.stream)
            if events < STREAM_CHUNKS:
                raise RuntimeError(f"the raw stream had {events} events")
            t.ttfc.raw.append(first)
            t.stream_total.raw.append(total)

    def plugin_embeds() -> None:
        for _ in range(embeds):
            # The whole result is one stdout line: its arrival is when Dify has every vector.
            result = plugin.collect("invoke_text_embedding", embedding_data(plain, texts))
            t.embed.plugin.append(first_item_seconds(result))

    def raw_embeds() -> None:
        t.embed.raw += [t.raw.embed(cap.embeddings) for _ in range(embeds)]

    pairs: list[tuple[Callable[[], None], Callable[[], None]]] = [
        (plugin_chats, raw_chats),
        (plugin_streams, raw_streams),
        (plugin_embeds, raw_embeds),
    ]
    for plugin_side, raw_side in pairs:
        for run in (raw_side, plugin_side) if flip else (plugin_side, raw_side):
            run()


@dataclass
class Startup:
    heartbeat: Samples = field(default_factory=Samples)  # raw = the do-nothing SDK plugin
    answer: Samples = field(default_factory=Samples)
    floor_rss_mib: list[float] = field(default_factory=list)


def measure_startup(
    spawns: int, plugin_dir: Path, floor_dir: Path, env: dict[str, str], credentials: dict[str, str]
) -> Startup:
    """Spawn → first heartbeat, and spawn → first answer to a blocking chat sent at that heartbeat
    (as the daemon sends requests as soon as it counts the plugin as started)."""
    out = Startup()
    for number in range(spawns):
        kinds = [("plugin", plugin_dir), ("floor", floor_dir)]
        for kind, root in kinds if number % 2 == 0 else kinds[::-1]:
            with start_plugin(root, env) as process:
                heartbeat = process.startup_seconds_to_heartbeat
                data = chat_data(credentials, stream=False) if kind == "plugin" else floor_chat(1, stream=False)
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
    plugin: str
    raw: str = "—"
    ratio: str = "—"
    target: str = "—"
    ok: bool | None = None


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.2f} ms (p90 {p90(values) * 1000:.2f})"


def _s(values: list[float]) -> str:
    return f"{median(values):.2f} s (p90 {p90(values):.2f})"


@dataclass
class Results:
    startup: Startup
    floor: Floor
    transports: list[Transport]
    idle_rate: float
    embedding_requests: int
    max_chunks: int
    peak_rss_mib: float
    final_rss_mib: float

    def rows(self) -> list[Row]:
        hb, answer = self.startup.heartbeat, self.startup.answer
        floor_note = " (SDK floor)"
        rows = [
            Row("start-up: spawn → first heartbeat", _s(hb.plugin), _s(hb.raw) + floor_note, f"{hb.ratio:.2f}x",
                "≤ 1.0 s", median(hb.plugin) <= 1.0),
            Row("start-up: spawn → first answer (blocking chat sent at the heartbeat)", _s(answer.plugin),
                _s(answer.raw) + floor_note, f"{answer.ratio:.2f}x", "≤ 3.0 s", median(answer.plugin) <= 3.0),
        ]  # fmt: skip
        rows += [
            Row(f"blocking chat, {t.name} ({len(t.chat.plugin)} sequential)", _ms(t.chat.plugin), _ms(t.chat.raw),
                f"{t.chat.ratio:.2f}x (+{t.chat.added_ms:.2f} ms)", "≤ raw + 2.0 ms", t.chat.added_ms <= 2.0)
            for t in self.transports
        ]  # fmt: skip
        for t in self.transports:
            chunks = len(t.stream_total.plugin) * STREAM_CHUNKS
            per_chunk = t.stream_cpu.per_chunk_ms(self.idle_rate, chunks)
            stream = f"{STREAM_CHUNKS}-chunk stream, {t.name}"
            rows += [
                Row(f"{stream}: first chunk", _ms(t.ttfc.plugin), _ms(t.ttfc.raw), f"+{t.ttfc.added_ms:.2f} ms",
                    "≤ raw + 5 ms", t.ttfc.added_ms <= 5.0),
                Row(f"{stream}: whole stream ({len(t.stream_total.plugin)} streams)", _ms(t.stream_total.plugin),
                    _ms(t.stream_total.raw), f"{t.stream_total.ratio:.2f}x", "≤ 4x raw", t.stream_total.ratio <= 4.0),
                Row(f"{stream}: plugin CPU per chunk", f"{per_chunk:.4f} ms", target="≤ 0.08 ms",
                    ok=per_chunk <= 0.08),
            ]  # fmt: skip
        rows += [
            Row(f"embeddings, {EMBEDDING_TEXTS} texts × 1024 dimensions, {t.name}", _ms(t.embed.plugin),
                _ms(t.embed.raw), f"{t.embed.ratio:.2f}x", "≤ 2x raw", t.embed.ratio <= 2.0)
            for t in self.transports
        ]  # fmt: skip
        expected = math.ceil(EMBEDDING_TEXTS / self.max_chunks)
        rows += [
            Row(f"embeddings: HTTP requests for {EMBEDDING_TEXTS} texts (max_chunks {self.max_chunks})",
                str(self.embedding_requests), str(self.embedding_requests), target=f"= {expected}",
                ok=self.embedding_requests == expected),
            Row("peak RSS after the whole run (VmHWM)", f"{self.peak_rss_mib:.0f} MiB",
                f"{median(self.startup.floor_rss_mib):.0f} MiB (SDK floor)", target="≤ 256 MiB",
                ok=self.peak_rss_mib <= 256),
            Row("stdio floor: blocking one-chunk answer (do-nothing SDK plugin)", _ms(self.floor.chat)),
            Row(f"stdio floor: {STREAM_CHUNKS}-chunk stream (do-nothing SDK plugin)",
                f"{_ms(self.floor.stream_total)}, CPU {self.floor.cpu_per_chunk_ms:.4f} ms/chunk"),
        ]  # fmt: skip
        return rows


def render(rows: list[Row], notes: list[str]) -> str:
    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("yes" if ok else "**no**")

    lines = ["| metric | plugin | raw | ratio | target | ok? |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.plugin} | {r.raw} | {r.ratio} | {r.target} | {verdict(r.ok)} |" for r in rows]
    return "\n".join([*lines, "", *notes]) + "\n"


def _git_revision(root: Path) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if rev.returncode != 0:
        return f"unknown ({root} is not a git checkout)"
    return rev.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


# --------------------------------------------------------------------------- main


def catalog_max_chunks(plugin_dir: Path) -> int:
    """The embedding model's max_chunks in the plugin's catalog, read in a child process: importing
    adapters/ imports dify_plugin, whose gevent monkey patch must not reach this measuring process (with
    it, the stdio driver's first request got no answer within 60 s, and the raw client would run on gevent)."""
    code = (
        "from adapters.catalog.loader import default_catalog; "
        f"print(default_catalog().get('text-embedding', {EMBEDDING_MODEL!r}).info.max_chunks)"
    )
    return int(subprocess.run([sys.executable, "-c", code], cwd=plugin_dir, check=True, capture_output=True).stdout)


def run(args: argparse.Namespace) -> Results:
    plugin_dir: Path = args.plugin_dir.resolve()
    max_chunks = catalog_max_chunks(plugin_dir)
    workdir = Path(tempfile.mkdtemp(prefix="aigw-bench-"))
    try:
        tls = make_tls(workdir)
        floor_dir = write_floor_plugin(workdir / "floor")
        env = plugin_env(tls)
        with emulator_process(None) as http_url, emulator_process(tls) as https_url:
            say(f"emulators at {http_url} and {https_url}; plugin from {plugin_dir}")
            say(f"start-up: {args.spawns} spawns each of the plugin and of the SDK floor ...")
            credentials = {"endpoint_url": f"{http_url}/v1", "api_key": KEY}
            startup = measure_startup(args.spawns, plugin_dir, floor_dir, env, credentials)
            say("stdio floor ...")
            floor = measure_floor(floor_dir, env, args.rounds, args.chats, args.streams)
            transports = [
                Transport("HTTP", http_url, RawClient(http_url, False)),
                Transport("TLS", https_url, RawClient(https_url, ssl.create_default_context(cafile=str(tls.ca)))),
            ]
            with start_plugin(plugin_dir, env) as plugin:
                captured = capture_requests(plugin)
                for t in transports:  # warm-up: connections, TLS sessions, first-call lazy imports
                    t.reset(plugin.pid)
                    run_round(plugin, t, captured, chats=20, streams=3, embeds=3, flip=False)
                    t.reset(plugin.pid)
                idle = idle_cpu_rate(plugin.pid, 2.0)
                for number in range(args.rounds):
                    say(f"round {number + 1}/{args.rounds} ...")
                    for t in transports:
                        run_round(
                            plugin,
                            t,
                            captured,
                            chats=args.chats,
                            streams=args.streams,
                            embeds=args.embeds,
                            flip=number % 2 == 1,
                        )
                idle = (idle + idle_cpu_rate(plugin.pid, 2.0)) / 2
                peak_rss, final_rss = proc_status_mib(plugin.pid, "VmHWM"), proc_status_mib(plugin.pid, "VmRSS")
            for t in transports:
                t.raw.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Results(startup, floor, transports, idle, len(captured.embeddings), max_chunks, peak_rss, final_rss)


def notes(args: argparse.Namespace, results: Results) -> list[str]:
    command = " ".join(["python -m tests.tools.bench", *sys.argv[1:]]) if sys.argv[1:] else "make bench"
    streams = results.transports[0].stream_items
    return [
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, plugin at commit "
        f"{_git_revision(args.plugin_dir)}; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}.",
        f"Medians of {args.rounds} interleaved rounds, p90 in brackets; start-up over {args.spawns} spawns. Plugin: "
        "`python -m main` over stdio as the Dify daemon runs it, timed from writing the request to the answer's "
        "line arriving. Raw: one keep-alive httpx client in the bench process sending the plugin's exact request "
        "bytes to the same emulator process (plain HTTP, and TLS with a trustme CA). "
        f"Stream: {STREAM_CHUNKS} content chunks (`/_fault/chunks-{STREAM_CHUNKS}/`), {streams} Dify chunks; "
        f"plugin CPU from /proc/<pid>/stat minus its idle rate ({results.idle_rate * 1000:.2f} ms/s). Embeddings: "
        f"{EMBEDDING_MODEL}. Plugin RSS at the end: {results.final_rss_mib:.0f} MiB.",
        "SDK floor: a do-nothing dify_plugin model plugin (canned answers, no HTTP, no LiteLLM) driven the same way.",
    ]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--spawns", type=int, default=5, help="start-up measurements of each kind (default 5)")
    parser.add_argument("--chats", type=int, default=40, help="blocking chats per round and transport (default 40)")
    parser.add_argument("--streams", type=int, default=4, help="streams per round and transport (default 4)")
    parser.add_argument("--embeds", type=int, default=4, help="embedding batches per round and transport (default 4)")
    parser.add_argument("--plugin-dir", type=Path, default=REPO_ROOT, help="the plugin to run (default: this one)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results" / "latest.md")
    args = parser.parse_args(argv)
    results = run(args)
    text = render(results.rows(), notes(args, results))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    say(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
