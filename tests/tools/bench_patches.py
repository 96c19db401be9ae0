"""`make bench-patches`: each patch of adapters/runtime/sdk_runtime.py against the plugin without it.

Every variant is main.py with patches' lines taken out: the edits below must each match main.py
exactly once, so a changed main.py stops this benchmark instead of measuring something else. Each
variant runs as the daemon runs the plugin (`python -m <variant>` over stdio, INSTALL_METHOD=local)
against one gateway emulator in its own process; variants are interleaved (the order rotates every
round) and every ratio is "without the patch / with it" from the same run.

Start-up patches (fresh processes each time): the GC pause and libyaml by spawn → first heartbeat
and the CPU the start-up took, against a plugin that stays idle after its heartbeat (LiteLLM loaded
on the first request, so the CPU read after the heartbeat is start-up only); the GC pause also by
the CPU time of the collections that run while the start-up imports (gc.callbacks, in a process
that only imports the variant). Loading LiteLLM after the first heartbeat by spawn → first answer
to a chat sent at the heartbeat (the daemon sends requests as soon as it counts the plugin as
started) and by the answer time of a first chat sent LATE seconds after the heartbeat (a user who
comes later), against every other patch in place.

The writer patch (one long-lived process per variant): a pre-buffered stream (500 chunks with no
gap, the whole answer in the socket at once), a paced stream (100 chunks 10-40 ms apart, as a model
generates tokens) and 20 such paced streams at once. Per stream chunk: the plugin's CPU (minus its
idle rate) and its write system calls (/proc/<pid>/io), and the time to the last chunk.

    python -m tests.tools.bench_patches [--part all|start-up|streams] [--rounds 3] [--spawns 4] [--out FILE]

Nothing here asserts timings; the table says which patch pays.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.stdio_driver import PluginProcess, SessionResult
from tests.tools.bench import KEY, REPO_ROOT, chat_data, emulator_process, median, p90

# Seconds after the first heartbeat that the "late" first chat is sent: longer than LiteLLM's import
# takes on a busy 2-core machine, so the patch that starts it at the heartbeat can show what it buys.
LATE = 8.0
PRE_BUFFERED = "/_fault/chunks-500"
PACED = "/_fault/chunks-100/_fault/slow-chunks-10-40"
CONCURRENT = 20

# The patches, as text edits of main.py: (what main.py says, what the variant says instead).
PATCHES: dict[str, list[tuple[str, str]]] = {
    "GC paused and frozen during start-up": [("\ngc.disable()\n", "\n"), ("sdk_runtime.end_of_start_up()\n", "")],
    "libyaml for the SDK's YAML": [("with sdk_runtime.libyaml_for_the_sdk():\n    plugin =", "plugin =")],
    "LiteLLM loaded after the first heartbeat": [("    sdk_runtime.load_litellm_after_first_heartbeat(plugin)\n", "")],
    "chunk serialized once": [("    sdk_runtime.serialize_chunks_once()\n", "")],
}
LATE_PATCH = "LiteLLM loaded after the first heartbeat"
# Measured on the heartbeat, so against a plugin that stays idle after it (LiteLLM imported on the
# first request): the CPU read just after the heartbeat is then start-up only.
HEARTBEAT_PATCHES = ("GC paused and frozen during start-up", "libyaml for the SDK's YAML")
WRITER_PATCHES = ("chunk serialized once",)
Without = tuple[str, ...]  # a variant: the patches it leaves out


def variant_name(without: Without) -> str:
    return "every patch" if not without else "without " + " and ".join(without)


def variant_source(main_source: str, without: Without) -> str:
    source = main_source
    for name in without:
        for old, new in PATCHES[name]:
            if source.count(old) != 1:
                raise SystemExit(f"main.py no longer contains {old!r} exactly once: update PATCHES[{name!r}]")
            source = source.replace(old, new)
    return source


VARIANTS: tuple[Without, ...] = (
    (),
    (LATE_PATCH,),
    *((LATE_PATCH, name) for name in HEARTBEAT_PATCHES),
    *((name,) for name in WRITER_PATCHES),
)


def write_variants(directory: Path) -> None:
    """`bench_variant_<n>.py` in `directory` for each of VARIANTS: main.py without those patches."""
    main_source = (REPO_ROOT / "main.py").read_text(encoding="utf-8")
    for number, without in enumerate(VARIANTS):
        (directory / f"bench_variant_{number}.py").write_text(variant_source(main_source, without), encoding="utf-8")


@dataclass
class Plugins:
    """How to start each variant: the module to run and the environment that finds it."""

    directory: Path
    env: dict[str, str]

    def start(self, variant: Without) -> PluginProcess:
        number = VARIANTS.index(variant)
        env = {**self.env, "PYTHONPATH": str(self.directory)}
        return PluginProcess.start(REPO_ROOT, env=env, inherit_env=False, entrypoint=f"bench_variant_{number}")


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of a process, to the nanosecond (/proc/<pid>/task/*/schedstat).

    /proc/<pid>/stat counts in clock ticks (10 ms): too coarse for a 100-chunk stream.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def idle_cpu_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second the process burns while idle (heartbeats, the SDK's watchdog)."""
    cpu, wall = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - wall)


def syscalls_written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- start-up


@dataclass
class StartUp:
    heartbeat: list[float] = field(default_factory=list)
    heartbeat_cpu: list[float] = field(default_factory=list)  # CPU seconds of start-up, read when idle after it
    collections: list[float] = field(default_factory=list)  # CPU seconds spent in GC collections by start-up
    answer: list[float] = field(default_factory=list)  # spawn → first answer, the chat sent at the heartbeat
    answer_cpu: list[float] = field(default_factory=list)  # CPU seconds spent by then
    answer_late: list[float] = field(default_factory=list)  # answer time of a first chat sent LATE s later


def _answer(plugin: PluginProcess, credentials: dict[str, str]) -> SessionResult:
    result = plugin.collect("invoke_llm", chat_data(credentials, stream=False), timeout=120)
    return result.raise_for_error()


def measure_heartbeats(plugins: Plugins, spawns: int) -> dict[Without, StartUp]:
    variants = [(LATE_PATCH,), *((LATE_PATCH, name) for name in HEARTBEAT_PATCHES)]
    out = {variant: StartUp() for variant in variants}
    for number in range(spawns):
        say(f"heartbeats {number + 1}/{spawns} ...")
        for variant in rotated(variants, number):
            with plugins.start(variant) as plugin:
                time.sleep(0.3)  # idle by now: nothing runs after the heartbeat without a request
                out[variant].heartbeat_cpu.append(cpu_seconds(plugin.pid))
                out[variant].heartbeat.append(plugin.startup_seconds_to_heartbeat)
    return out


# Imports a variant as main.py's start-up does (no serving) and reports the CPU time its GC collections took.
_COLLECTIONS_PROBE = """
import gc, json, sys, time
spent, began = [0.0], [0.0]
def timed(phase, info):
    if phase == "start":
        began[0] = time.process_time()
    else:
        spent[0] += time.process_time() - began[0]
gc.callbacks.append(timed)
import {module}
gc.callbacks.remove(timed)
print(json.dumps(spent[0]), file=sys.stderr)
"""


def measure_collections(plugins: Plugins, spawns: int) -> dict[Without, StartUp]:
    """The GC patch's share directly: CPU seconds of the collections that run while the plugin starts."""
    variants: list[Without] = [(LATE_PATCH,), (LATE_PATCH, HEARTBEAT_PATCHES[0])]
    out = {variant: StartUp() for variant in variants}
    for number in range(spawns):
        for variant in rotated(variants, number):
            module = f"bench_variant_{VARIANTS.index(variant)}"
            done = subprocess.run(
                [sys.executable, "-c", _COLLECTIONS_PROBE.format(module=module)],
                cwd=REPO_ROOT,
                env={**plugins.env, "PYTHONPATH": str(plugins.directory)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            out[variant].collections.append(json.loads(done.stderr.strip().splitlines()[-1]))
    return out


def measure_first_answers(plugins: Plugins, spawns: int, url: str) -> dict[Without, StartUp]:
    credentials = {"endpoint_url": f"{url}/v1", "api_key": KEY}
    variants: list[Without] = [(), (LATE_PATCH,)]
    out = {variant: StartUp() for variant in variants}
    for number in range(spawns):
        say(f"first answers {number + 1}/{spawns} ...")
        for variant in rotated(variants, number):
            with plugins.start(variant) as plugin:
                result = _answer(plugin, credentials)
                out[variant].answer_cpu.append(cpu_seconds(plugin.pid))
                out[variant].answer.append(result.item_times[0] - plugin.spawned_at)
            with plugins.start(variant) as plugin:
                time.sleep(max(0.0, plugin.heartbeat_times[0] + LATE - time.monotonic()))
                result = _answer(plugin, credentials)
                out[variant].answer_late.append(result.item_times[0] - result.sent_at)
    return out


# --------------------------------------------------------------------------- streams


@dataclass
class StreamSamples:
    seconds: list[float] = field(default_factory=list)  # request → last chunk, per stream or batch
    cpu: float = 0.0
    idle_seconds: float = 0.0
    writes: int = 0
    chunks: int = 0

    def cpu_ms_per_chunk(self, idle_rate: float) -> float:
        return (self.cpu - idle_rate * self.idle_seconds) / self.chunks * 1000 if self.chunks else math.nan

    @property
    def writes_per_chunk(self) -> float:
        return self.writes / self.chunks if self.chunks else math.nan


@contextlib.contextmanager
def metered(pid: int, samples: StreamSamples) -> Iterator[None]:
    cpu, wall, writes = cpu_seconds(pid), time.monotonic(), syscalls_written(pid)
    yield
    samples.cpu += cpu_seconds(pid) - cpu
    samples.idle_seconds += time.monotonic() - wall
    samples.writes += syscalls_written(pid) - writes


def _stream(plugin: PluginProcess, credentials: dict[str, str]) -> SessionResult:
    result = plugin.collect("invoke_llm", chat_data(credentials, stream=True), timeout=120).raise_for_error()
    if result.items[-1]["delta"].get("finish_reason") != "stop":
        raise RuntimeError("a benchmark stream did not finish")
    return result


@dataclass
class WriterRun:
    plugin: PluginProcess
    idle_rate: float = 0.0
    scenarios: dict[str, StreamSamples] = field(default_factory=dict)

    def samples(self, scenario: str) -> StreamSamples:
        return self.scenarios.setdefault(scenario, StreamSamples())


SCENARIOS = (
    "pre-buffered stream (500 chunks, no gap)",
    "paced stream (100 chunks 10-40 ms apart)",
    f"{CONCURRENT} paced streams at once",
)


def stream_round(run: WriterRun, url: str, streams: int) -> None:
    pre, paced, concurrent = (run.samples(s) for s in SCENARIOS)
    pre_credentials = {"endpoint_url": f"{url}{PRE_BUFFERED}/v1", "api_key": KEY}
    paced_credentials = {"endpoint_url": f"{url}{PACED}/v1", "api_key": KEY}
    pid = run.plugin.pid
    for _ in range(streams):
        with metered(pid, pre):
            result = _stream(run.plugin, pre_credentials)
        pre.seconds.append(result.item_times[-1] - result.sent_at)
        pre.chunks += len(result.items)
    for _ in range(max(1, streams // 2)):
        with metered(pid, paced):
            result = _stream(run.plugin, paced_credentials)
        paced.seconds.append(result.item_times[-1] - result.sent_at)
        paced.chunks += len(result.items)
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool, metered(pid, concurrent):
        started = time.monotonic()
        results = list(pool.map(lambda _: _stream(run.plugin, paced_credentials), range(CONCURRENT)))
    concurrent.seconds.append(max(r.item_times[-1] for r in results) - started)
    concurrent.chunks += sum(len(r.items) for r in results)


def measure_streams(plugins: Plugins, rounds: int, streams: int, url: str) -> dict[Without, WriterRun]:
    variants: list[Without] = [(), *((name,) for name in WRITER_PATCHES)]
    runs: dict[Without, WriterRun] = {}
    with contextlib.ExitStack() as stack:
        for variant in variants:
            plugin = stack.enter_context(plugins.start(variant))
            run = WriterRun(plugin)
            stream_round(run, url, 2)  # warm-up: LiteLLM's import, connections, first-call imports
            run.scenarios.clear()
            run.idle_rate = idle_cpu_rate(plugin.pid, 1.0)
            runs[variant] = run
        for number in range(rounds):
            say(f"streams {number + 1}/{rounds} ...")
            for variant in rotated(variants, number):
                stream_round(runs[variant], url, streams)
        for run in runs.values():
            run.idle_rate = (run.idle_rate + idle_cpu_rate(run.plugin.pid, 1.0)) / 2
    return runs


# --------------------------------------------------------------------------- report


def rotated(items: list[Without], by: int) -> list[Without]:
    by %= len(items)
    return items[by:] + items[:by]


def _s(values: list[float]) -> str:
    return f"{median(values):.3f} s (p90 {p90(values):.3f})"


def _ratio(without: float, production: float) -> str:
    # Below a millisecond (no GC collection at all) a ratio says nothing; the two columns say it all.
    return f"{without / production:.2f}x" if production >= 0.001 else "—"


def _row(patch: str, metric: str, every: list[float], without: list[float]) -> str:
    ratio = _ratio(median(without), median(every))
    return f"| {patch} | {metric} | {_s(every)} | {_s(without)} | {ratio} |"


def start_up_table(
    heartbeats: dict[Without, StartUp], collections: dict[Without, StartUp], answers: dict[Without, StartUp]
) -> list[str]:
    lines = ["| patch | start-up | with it | without it | ratio (without / with) |", "|---|---|---|---|---|"]
    base = heartbeats.get((LATE_PATCH,))
    for name in HEARTBEAT_PATCHES if base else ():
        without = heartbeats[(LATE_PATCH, name)]
        lines.append(_row(name, "spawn → first heartbeat", base.heartbeat, without.heartbeat))
        lines.append(_row(name, "CPU of the start-up", base.heartbeat_cpu, without.heartbeat_cpu))
        if (LATE_PATCH, name) in collections:
            spent, spent_without = collections[(LATE_PATCH,)].collections, collections[(LATE_PATCH, name)].collections
            lines.append(_row(name, "CPU in GC collections during start-up", spent, spent_without))
    if answers:
        every, without = answers[()], answers[(LATE_PATCH,)]
        lines += [
            _row(LATE_PATCH, "spawn → first answer (chat sent at the heartbeat)", every.answer, without.answer),
            _row(LATE_PATCH, "CPU by that first answer", every.answer_cpu, without.answer_cpu),
            _row(LATE_PATCH, f"answer to a first chat sent {LATE:g} s after the heartbeat", every.answer_late,
                 without.answer_late),
        ]  # fmt: skip
    return lines


def stream_table(runs: dict[Without, WriterRun]) -> list[str]:
    base = runs[()]
    lines = [
        "| stream | variant | CPU per chunk | writes per chunk | to the last chunk | CPU ratio (variant / every) |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        every = base.samples(scenario).cpu_ms_per_chunk(base.idle_rate)
        for variant, run in runs.items():
            samples = run.samples(scenario)
            cpu = samples.cpu_ms_per_chunk(run.idle_rate)
            lines.append(
                f"| {scenario} | {variant_name(variant)} | {cpu:.4f} ms | {samples.writes_per_chunk:.2f} "
                f"| {_s(samples.seconds)} | {_ratio(cpu, every)} |"
            )
    return lines


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved stream rounds (default 3)")
    parser.add_argument("--spawns", type=int, default=4, help="start-up measurements per variant (default 4)")
    parser.add_argument("--streams", type=int, default=4, help="pre-buffered streams per round (default 4)")
    parser.add_argument("--part", choices=("all", "start-up", "streams"), default="all")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench-results" / "patches.md")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="aigw-bench-patches-"))
    try:
        write_variants(directory)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        plugins = Plugins(directory, env | {"INSTALL_METHOD": "local"})
        heartbeats: dict[Without, StartUp] = {}
        collections: dict[Without, StartUp] = {}
        answers: dict[Without, StartUp] = {}
        streams: dict[Without, WriterRun] = {}
        with emulator_process(None) as url:
            if args.part in ("all", "start-up"):
                heartbeats = measure_heartbeats(plugins, args.spawns)
                collections = measure_collections(plugins, args.spawns)
                answers = measure_first_answers(plugins, args.spawns, url)
            if args.part in ("all", "streams"):
                streams = measure_streams(plugins, args.rounds, args.streams, url)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    notes = [
        f"`python -m tests.tools.bench_patches {' '.join(sys.argv[1:])}`".replace(" `", "`")
        + f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Medians, p90 in brackets; start-up over {args.spawns} spawns per "
        f"variant, streams over {args.rounds} interleaved rounds. "
        "CPU from /proc/<pid>/task/*/schedstat (for streams minus the idle rate); "
        "writes = write system calls of the plugin process (/proc/<pid>/io syscw, its HTTP sends included).",
    ]
    tables = [
        *(start_up_table(heartbeats, collections, answers) if answers else []),
        "",
        *(stream_table(streams) if streams else []),
    ]
    text = "\n".join([*tables, "", *notes]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    say(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
