"""`make load`: many concurrent streaming chats plus embeddings through ONE plugin process.

The plugin runs as Dify runs it (stdio, `python -m main`) against the gateway emulator, whose
streams are slowed (`/_fault/slow-chunks-MS/`) so the chats really overlap. Each round checks that
every answer is complete and belongs to its own request, that heartbeats kept flowing, and samples
the plugin's resident memory; later rounds must come back to the first round's plateau. Beside the
rounds, one stream floods the plugin (`/_fault/flood-S/`: the gateway writes as fast as the plugin
reads) for `--flood-seconds`, and rounds go on until it has ended: the heartbeats and the paced
chats must not notice it.

    python -m tests.tools.load [--chats 100] [--embeddings 20] [--rounds 3] [--flood-seconds 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# gevent's patching (on import) before any thread starts; the driver cooperates with it.
import dify_plugin  # noqa: F401

from tests.emulator import embedding_vector
from tests.emulator.process import emulator_process
from tests.stdio_driver import PluginProcess, chat_data

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
PROVIDER = "aliyun_ai_gateway"
KEY = "sk-load"
WORDS_PER_CHAT = 20


@dataclass
class LoadReport:
    chats: int
    embeddings: int
    round_seconds: list[float] = field(default_factory=list)
    rss_mib_after_round: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    max_heartbeat_gap: float = 0.0
    max_chat_gap: float = 0.0  # the longest wait for a paced chat's next chunk (or its first)
    flood_seconds: float = 0.0
    flood_chunks: int = 0
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        rounds = ", ".join(f"{s:.2f}" for s in self.round_seconds)
        rss = ", ".join(f"{m:.0f}" for m in self.rss_mib_after_round)
        return [
            f"concurrent per round: {self.chats} streaming chats ({WORDS_PER_CHAT} chunks each) + {self.embeddings} "
            f"embedding batches",
            f"round wall time (s): {rounds}",
            f"plugin RSS after each round (MiB): {rss}; peak {self.peak_rss_mib:.0f} MiB",
            f"longest gap between heartbeats: {self.max_heartbeat_gap:.2f} s",
            f"longest wait inside a paced chat: {self.max_chat_gap:.2f} s",
            *(
                [f"flooding stream beside the rounds: {self.flood_chunks} chunks in {self.flood_seconds:g} s"]
                if self.flood_seconds
                else []
            ),
            f"failures: {len(self.failures)}" + "".join(f"\n  - {f}" for f in self.failures[:10]),
        ]


def _rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _chat(plugin: PluginProcess, credentials: dict, text: str) -> tuple[str | None, float]:
    """(what went wrong or None, the longest wait for a chunk) of one paced chat."""
    result = plugin.collect("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, text), timeout=120)
    times = [result.sent_at, *result.item_times]
    longest = max(b - a for a, b in itertools.pairwise(times))
    items = result.items
    answer = "".join(item["delta"]["message"]["content"] or "" for item in items)
    if result.error is not None or answer != f"echo: {text}" or items[-1]["delta"]["finish_reason"] != "stop":
        return f"chat {text[:30]!r}… answered {answer[:60]!r} ({result.error})", longest
    return None, longest


def _flood(plugin: PluginProcess, credentials: dict) -> tuple[str | None, int]:
    """(what went wrong or None, chunks relayed) of the flooding stream; its items are not kept."""
    session = plugin.stream("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, "flood"), timeout=600)
    session.keep_items = False
    chunks, finish = 0, None
    for item in session:
        chunks += 1
        finish = item["delta"]["finish_reason"] or finish
    return (None if finish == "stop" else f"the flooding stream ended with finish reason {finish!r}"), chunks


def _embed(plugin: PluginProcess, credentials: dict, texts: list[str]) -> str | None:
    result = plugin.request(
        "invoke_text_embedding",
        {
            "provider": PROVIDER,
            "model_type": "text-embedding",
            "model": "text-embedding-v3",
            "credentials": credentials,
            "texts": texts,
            "input_type": "document",
        },
        timeout=120,
    )[-1]
    vectors = result["embeddings"]
    expected = [embedding_vector(t, len(vectors[0])) for t in texts] if vectors else []
    if len(vectors) != len(texts) or any(
        abs(a - b) > 1e-5 for got, want in zip(vectors, expected, strict=True) for a, b in zip(got, want, strict=True)
    ):
        return f"embedding batch {texts[0]!r}… came back wrong or in the wrong order"
    return None


def run_load(
    chats: int = 100, embeddings: int = 20, rounds: int = 3, chunk_delay_ms: int = 20, flood_seconds: float = 0.0
) -> LoadReport:
    report = LoadReport(chats, embeddings, flood_seconds=flood_seconds)
    env = {"INSTALL_METHOD": "local", "HEARTBEAT_INTERVAL": "0.5"}
    gateway = ("--auth", "api_key", "--api-key", KEY, "--consumer", "load")
    # The flood comes from an emulator process of its own: its thread, writing as fast as the plugin
    # reads, would otherwise hold the emulator's GIL against the threads that pace the other chats.
    with (
        emulator_process(*gateway) as base_url,
        emulator_process(*gateway) as flood_url,
        PluginProcess.start(PLUGIN_ROOT, env=env) as plugin,
    ):
        slow = {"endpoint_url": f"{base_url}/_fault/slow-chunks-{chunk_delay_ms}/v1", "api_key": KEY}
        plain = {"endpoint_url": f"{base_url}/v1", "api_key": KEY}
        _chat(plugin, plain, "warm up")  # LiteLLM's import is not part of the load
        load_started = time.monotonic()
        with ThreadPoolExecutor(max_workers=chats + embeddings + 1) as pool:
            flooding = {"endpoint_url": f"{flood_url}/_fault/flood-{flood_seconds:g}/v1", "api_key": KEY}
            flood = pool.submit(_flood, plugin, flooding) if flood_seconds else None
            number = 0
            while number < rounds or (flood is not None and not flood.done()):
                started = time.monotonic()
                words = [" ".join(f"r{number}c{i}w{w}" for w in range(WORDS_PER_CHAT - 1)) for i in range(chats)]
                paced = [pool.submit(_chat, plugin, slow, text) for text in words]
                jobs = [
                    pool.submit(_embed, plugin, plain, [f"round {number} batch {i} text {t}" for t in range(16)])
                    for i in range(embeddings)
                ]
                for failure, longest in (job.result() for job in paced):
                    report.failures += [failure] if failure else []
                    report.max_chat_gap = max(report.max_chat_gap, longest)
                report.failures += [f for f in (job.result() for job in jobs) if f]
                report.round_seconds.append(time.monotonic() - started)
                report.rss_mib_after_round.append(_rss_mib(plugin.pid))
                number += 1
            if flood is not None:
                failure, report.flood_chunks = flood.result()
                report.failures += [failure] if failure else []
        report.peak_rss_mib = _rss_mib(plugin.pid, "VmHWM")
        # Gaps between heartbeats while under load, including the silence up to the end of the run.
        beats = [t for t in plugin.heartbeat_times if t >= load_started] + [time.monotonic()]
        report.max_heartbeat_gap = max(b - a for a, b in zip([load_started, *beats], beats, strict=False))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--embeddings", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flood-seconds", type=float, default=60.0, help="0: no flooding stream")
    parser.add_argument("--json", action="store_true", help="the report as one JSON object (make bench reads it)")
    args = parser.parse_args(argv)
    report = run_load(args.chats, args.embeddings, args.rounds, flood_seconds=args.flood_seconds)
    print(json.dumps(dataclasses.asdict(report)) if args.json else "\n".join(report.lines()))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
