"""Recorded real answers scaled to N chunks with their exact bytes, for make bench.

A recorded stream (../shared/real_traces, found as tests/real_traces.py says) is made N chunks long
by repeating its repeatable events where they stand: an event whose first choice carries one piece
of answer text or of reasoning and nothing that happens once. Every event is repeated byte for
byte; the others (a role-only opening, tool-call fragments, the finish, the usage chunk, `[DONE]`)
are kept once in their place, so a tool call's arguments stay the recorded JSON; and the phases
keep their proportions: a reasoning stream scaled to 500 chunks still thinks first and answers
after. Event r of R repeatable events appears floor((r + 1) N / R) - floor(r N / R) times, N in all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.emulator.recorded import sse_events
from tests.real_traces import BODIES_DIR

_TEXT_FIELDS = ("content", "reasoning_content", "reasoning")


@dataclass(frozen=True)
class Shape:
    """A recorded answer the bench replays: its file and what it shows."""

    name: str
    file: str
    what: str

    @property
    def body(self) -> bytes:
        return (BODIES_DIR / self.file).read_bytes()


def _data(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.decode("utf-8").splitlines() if line.startswith("data:")]
    if not lines or lines == ["[DONE]"]:
        return None
    return json.loads("\n".join(lines))


def repeatable(event: bytes) -> bool:
    """One piece of answer text or reasoning, and nothing that happens once."""
    data = _data(event)
    if not isinstance(data, dict) or data.get("usage") or not isinstance(data.get("choices"), list):
        return False
    if len(data["choices"]) != 1:
        return False
    choice = data["choices"][0]
    delta = choice.get("delta")
    if choice.get("finish_reason") or not isinstance(delta, dict) or delta.get("role") or delta.get("tool_calls"):
        return False
    return sum(isinstance(delta.get(key), str) and bool(delta[key]) for key in _TEXT_FIELDS) == 1


def scaled(body: bytes, chunks: int) -> bytes:
    """The recorded SSE `body` with exactly `chunks` repeatable events."""
    events = sse_events(body)
    marks = [repeatable(event) for event in events]
    total = sum(marks)
    if not total:
        raise ValueError("the recorded stream has no repeatable event")
    out: list[bytes] = []
    seen = 0
    for event, mark in zip(events, marks, strict=True):
        if not mark:
            out.append(event)
            continue
        copies = (seen + 1) * chunks // total - seen * chunks // total
        out += [event] * copies
        seen += 1
    return b"".join(out)


def write_scaled(folder: Path, shape: Shape, chunks: int) -> str:
    """Writes the scaled stream into `folder`; the file name the emulator serves it by."""
    name = f"{shape.name}-{chunks}.sse"
    (folder / name).write_bytes(scaled(shape.body, chunks))
    return name


def write_verbatim(folder: Path, file: str) -> str:
    (folder / file).write_bytes((BODIES_DIR / file).read_bytes())
    return file
