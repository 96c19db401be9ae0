"""Recorded real answers (../shared/real_traces) replayed through vcrpy, and an independent reader of them.

The folder holds answers recorded from the servers that sit behind the gateway (DashScope, OpenAI,
DeepSeek, vLLM, SGLang, ...) and the bytes Higress' own plugins write; `sources.json` lists each
body with the status, Content-Type and headers it was served with and where it comes from. The
bodies are not part of this repository: the folder is found next to the checkout, or wherever
AIGW_REAL_TRACES points, and tests that need it skip, saying where they looked, when it is absent.

`replayed()` builds a vcrpy cassette at test time from one sources.json entry and its body (nothing
is written to disk) and blocks every socket while the plugin runs against it.

The `read_*` functions derive what a user must see from the recording alone, with their own SSE and
JSON reading (the event-stream format as WHATWG HTML defines it), never with the plugin's code.
"""

from __future__ import annotations

import base64
import http
import json
import os
import struct
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import vcr
from vcr.request import Request as VcrRequest

from tests.cassettes import REPLAY_ENDPOINT, REPLAY_KEY, sockets_blocked


def _traces_dir() -> Path:
    """AIGW_REAL_TRACES, else `shared/real_traces` beside this checkout or beside the repository it was cloned from.

    A worktree or a CI clone may sit elsewhere than the original checkout, so every folder above the
    checkout is tried, and then the folders above the `origin` remote's path (a clean clone for CI
    keeps the original checkout as its origin).
    """
    if configured := os.environ.get("AIGW_REAL_TRACES"):
        return Path(configured)
    checkout = Path(__file__).resolve().parents[1]
    roots = [checkout]
    origin = subprocess.run(
        ["git", "-C", str(checkout), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin:
        roots.append(Path(origin.removeprefix("file://")).expanduser().resolve())
    candidates = [parent / "shared" / "real_traces" for root in roots for parent in root.parents]
    return next((c for c in candidates if (c / "sources.json").is_file()), candidates[0])


TRACES_DIR = _traces_dir()
BODIES_DIR = TRACES_DIR / "bodies"
SOURCES = TRACES_DIR / "sources.json"
needs_traces = pytest.mark.skipif(
    not SOURCES.is_file(),
    reason=f"recorded real answers not found at {TRACES_DIR} (set AIGW_REAL_TRACES to the real_traces folder)",
)


@dataclass(frozen=True)
class Recording:
    """One entry of sources.json: a body and how it was served."""

    number: int  # 1-based position in sources.json
    file: str
    kind: str  # the Dify model type it answers
    stream: bool | None  # whether it answers a streamed request (None: not an LLM)
    status: int
    content_type: str
    headers: Mapping[str, str]
    shape: str
    fidelity: str
    source: str  # where it was recorded (cited in every test that replays it)
    changed_body: bytes | None = None  # a variant's body, in place of the file's

    @property
    def body(self) -> bytes:
        return self.changed_body if self.changed_body is not None else (BODIES_DIR / self.file).read_bytes()

    @property
    def id(self) -> str:
        mode = "" if self.stream is None else ("-stream" if self.stream else "-blocking")
        return f"{self.number:02d}-{self.file}{mode}"

    @property
    def is_sse(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    def json(self) -> Any:
        return json.loads(self.body)


def recordings() -> list[Recording]:
    """Every sources.json entry, in order; none when the folder is absent."""
    if not SOURCES.is_file():
        return []
    entries = json.loads(SOURCES.read_text(encoding="utf-8"))["bodies"]
    return [
        Recording(
            number=number,
            file=e["file"],
            kind=e["kind"],
            stream=e["stream"],
            status=e["status"],
            content_type=e["content_type"],
            headers=dict(e.get("headers") or {}),
            shape=e["shape"],
            fidelity=e["fidelity"],
            source=e["source"],
        )
        for number, e in enumerate(entries, 1)
    ]


# ---------------------------------------------------------------------------------------------
# Replay through vcrpy


@dataclass(frozen=True)
class Served:
    """One answer to serve: what the gateway would send for the request on `path`."""

    path: str
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class _CassetteFromMemory:
    """A vcrpy persister whose cassette is the answers given to it, built when the test runs."""

    def __init__(self, answers: tuple[Served, ...]) -> None:
        self.answers = answers

    def load_cassette(self, cassette_path: str, serializer: Any) -> tuple[list, list]:
        base = REPLAY_ENDPOINT.removesuffix("/v1")
        requests = [VcrRequest("POST", base + a.path, b"", {}) for a in self.answers]
        responses = [
            {
                "status": {"code": a.status, "message": http.HTTPStatus(a.status).phrase},
                "headers": {"Content-Type": [a.content_type], **{k: [v] for k, v in a.headers.items()}},
                "body": {"string": a.body},
            }
            for a in self.answers
        ]
        return requests, responses

    def save_cassette(self, cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        raise AssertionError("a replayed recording is never written back")


@contextmanager
def replayed(*answers: Served) -> Iterator[dict[str, str]]:
    """Credentials under which the plugin's requests are answered from `answers`, each once.

    Requests match on method and path only (the recordings answered other clients' requests);
    a request for anything else, or a second request for the same answer, fails the test.
    """
    recorder = vcr.VCR(record_mode="none", match_on=["method", "path"])
    recorder.register_persister(_CassetteFromMemory(answers))
    with recorder.use_cassette("real-trace") as cassette, sockets_blocked():
        yield {"endpoint_url": REPLAY_ENDPOINT, "api_key": REPLAY_KEY, "max_retries": "0"}
    assert cassette.all_played, f"the plugin never asked for {[a.path for a in answers]}"


def served(recording: Recording, path: str) -> Served:
    return Served(path, recording.status, recording.content_type, recording.body, recording.headers)


# ---------------------------------------------------------------------------------------------
# The independent reader


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """(event type, data) of each event, per the event-stream format: lines end at CRLF, LF or CR,
    one leading space after the colon is dropped, data lines join with LF, a blank line ends an event.
    An event left unterminated at the end of the body is kept (gateways end bodies that way)."""
    text = body.decode("utf-8").removeprefix("\ufeff")
    lines: list[str] = []
    start, i = 0, 0
    while i < len(text):
        if text[i] in "\r\n":
            lines.append(text[start:i])
            i += 2 if text.startswith("\r\n", i) else 1
            start = i
        else:
            i += 1
    lines += [text[start:], ""] if start < len(text) else [""]
    events, event_type, data = [], "", []
    for line in lines:
        if not line:
            if data:
                events.append((event_type, "\n".join(data)))
            event_type, data = "", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
    return events


# In-stream errors without an HTTP status, by kind: the statuses these servers answer them with.
_ERROR_KIND_STATUS = {"invalid_request_error": 400, "data_inspection_failed": 400, "rate_limit_error": 429}


def error_status(error: Mapping[str, Any]) -> int:
    for key in ("status_code", "status", "code"):
        value = error.get(key)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return _ERROR_KIND_STATUS.get(str(error.get("type")), 500)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: Any  # parsed JSON


@dataclass
class Chat:
    """What a chat recording says: the answer, or the error it ends in."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False  # the stream ended with [DONE] (always True for a JSON answer)
    model: str | None = None
    error: Mapping[str, Any] | None = None

    @property
    def complete(self) -> bool:
        """Whole answer: [DONE], or its finish reason and the usage the plugin always asks for."""
        return self.done or (self.finish_reason is not None and self.prompt_tokens is not None)


def _usage(chat: Chat, usage: Any) -> None:
    if isinstance(usage, dict):
        chat.prompt_tokens = usage.get("prompt_tokens", chat.prompt_tokens)
        chat.completion_tokens = usage.get("completion_tokens", chat.completion_tokens)


def read_chat_stream(body: bytes) -> Chat:
    chat = Chat()
    calls: dict[int, dict[str, str]] = {}
    for event_type, data in sse_events(body):
        if data == "[DONE]":
            chat.done = True
            break
        chunk = json.loads(data)
        if event_type == "error" or "error" in chunk:
            error = chunk.get("error", chunk)
            chat.error = error if isinstance(error, dict) else {"message": str(error)}
            break
        chat.model = chunk.get("model", chat.model)
        _usage(chat, chunk.get("usage"))
        for choice in (chunk.get("choices") or [])[:1]:
            delta = choice.get("delta") or choice.get("message") or {}
            chat.reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            chat.content += delta.get("content") or ""
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                call = calls.setdefault(fragment.get("index", position), {"id": "", "name": "", "arguments": ""})
                function = fragment.get("function") or {}
                call["id"] = call["id"] or fragment.get("id") or ""
                call["name"] = call["name"] or function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
            chat.finish_reason = choice.get("finish_reason") or chat.finish_reason
    chat.tool_calls = [
        ToolCall(c["id"], c["name"], json.loads(c["arguments"] or "{}")) for _, c in sorted(calls.items())
    ]
    return chat


def read_chat_json(body: bytes) -> Chat:
    answer = json.loads(body)
    choice = answer["choices"][0]
    message = choice["message"]
    chat = Chat(
        content=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
        tool_calls=[
            ToolCall(c.get("id") or "", c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
            for c in message.get("tool_calls") or []
        ],
        finish_reason=choice.get("finish_reason"),
        done=True,
        model=answer.get("model"),
    )
    _usage(chat, answer.get("usage"))
    return chat


def read_chat(recording: Recording) -> Chat:
    return read_chat_stream(recording.body) if recording.is_sse else read_chat_json(recording.body)


def error_words(recording: Recording) -> list[str]:
    """The words of an error answer a user must see: its message, request id and reset hint."""
    try:
        answer = recording.json()
    except ValueError:
        words = [recording.body.decode().strip()]
    else:
        error = answer.get("error") if isinstance(answer.get("error"), dict) else answer
        words = [error["message"], *filter(None, [answer.get("request_id")])]
    return words + [v for k, v in recording.headers.items() if k.lower().endswith("ratelimit-reset")]


def read_vectors(answer: Mapping[str, Any]) -> list[list[float]]:
    """The vectors in input order, base64 ones decoded as little-endian float32."""
    vectors = []
    for item in sorted(answer["data"], key=lambda item: item["index"]):
        embedding = item["embedding"]
        if isinstance(embedding, str):
            raw = base64.b64decode(embedding)
            embedding = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        vectors.append(embedding)
    return vectors


def read_rerank(answer: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(input index, score) best first, ties by index, from any of the recorded result lists."""
    results = (answer.get("output") or {}).get("results") or answer.get("results") or answer.get("data") or []
    return sorted(((r["index"], float(r["relevance_score"])) for r in results), key=lambda p: (-p[1], p[0]))
