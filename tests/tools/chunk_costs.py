"""The plugin's own CPU per stream event on every recorded real stream, in-process: part of make bench.

For each streamed chat answer in ../shared/real_traces (sources.json), the recorded bytes are fed
to the plugin's stream relay as the gateway's answer, one event per network read, and every Dify
chunk it yields is serialized as the SDK writer sends it (adapters/runtime/sdk_runtime.py): the
CPU the plugin spends per event beyond the network and stdio, with the share of events read
without LiteLLM's parser (adapters/engine/litellm_facade.py, the lean path). The best of several
runs is kept, so a busy machine disturbs the figures less. make bench runs this in a child process
(importing the adapters installs gevent's monkey patch, which its raw client must not get) and
prints one JSON object per stream on stdout.

    python -m tests.tools.chunk_costs [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import dify_plugin  # noqa: F401 - gevent's monkey patch first, as in the plugin
import httpx
from dify_plugin.entities.model.llm import LLMUsage
from dify_plugin.errors.model import InvokeError

from adapters.catalog.loader import default_catalog
from adapters.dialects.kinds import ChatDialect
from adapters.dialects.registry import dialect
from adapters.engine import litellm_facade
from adapters.gateway.sse import EventStream
from adapters.models.llm.answer import relay_stream
from adapters.runtime.sdk_runtime import chunk_message_json
from tests.emulator.recorded import sse_events
from tests.real_traces import recordings

SESSION = "6f1c9a2e-0000-4000-8000-000000000001"
_REQUEST = httpx.Request("POST", "https://gateway.example/v1/chat/completions")


def _answer(events: list[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(events), request=_REQUEST)


def _relay(events: list[bytes]) -> int:
    """Dify chunks written for one replay of the stream (an in-stream error ends it, as recorded)."""
    wire = dialect(ChatDialect, "openai")
    model = default_catalog().get("llm", "qwen-plus")
    usage = LLMUsage.empty_usage()
    written = 0
    try:
        for chunk in relay_stream(model, wire, _answer(events), "/v1/chat/completions", lambda *_: usage):
            chunk_message_json(SESSION, chunk)
            written += 1
    except InvokeError:
        pass
    return written


def measure(name: str, body: bytes, runs: int) -> dict[str, object]:
    events = sse_events(body)
    read = list(EventStream(_answer(events), "/v1/chat/completions")) if events else []
    lean = sum(litellm_facade._lean_turn(data) is not None for data in read)
    chunks = _relay(events)  # warm: first-call work is no part of the figure
    best = math.inf
    for _ in range(runs):
        started = time.process_time()
        _relay(events)
        best = min(best, time.process_time() - started)
    per_event = best / max(len(read), 1) * 1e6
    return {"file": name, "events": len(read), "lean": lean, "dify_chunks": chunks, "us_per_event": per_event}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    litellm_facade.litellm()
    seen = set()
    for recording in recordings():
        if recording.kind != "llm" or not recording.is_sse or recording.status != 200 or recording.file in seen:
            continue
        seen.add(recording.file)
        print(json.dumps(measure(recording.file, recording.body, args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
