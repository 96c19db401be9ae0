"""Every recorded real answer (../shared/real_traces, see tests/real_traces.py) through the plugin.

Each sources.json entry becomes a vcrpy cassette at test time, served with its recorded status,
Content-Type and headers on the route of its model type, and the plugin's adapter answers a Dify
call through the SDK's public `invoke`, as Dify drives it. What the user must get is derived from
the recording by tests/real_traces.py's own reader, never from the plugin: the text (content
deltas or `message.content`), reasoning before it, every tool call whole with its recorded id, name
and arguments, the recorded usage, vectors, rerank order and scores, the transcript, or the Dify
error class with the gateway's own words. Each case's id names the body; its `recording.source`
says where the body was recorded.

The variants at the end change one thing about a recorded stream (line endings, data-line layout,
separators inside strings, where it ends, an error event) and are read by the same reference.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from dify_plugin.entities.model.message import PromptMessageTool, UserPromptMessage
from dify_plugin.errors.model import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from adapters.models.audio import silence_wav
from tests.conftest import adapter
from tests.real_traces import (
    BODIES_DIR,
    TRACES_DIR,
    Chat,
    Recording,
    error_status,
    error_words,
    read_chat,
    read_rerank,
    read_vectors,
    recordings,
    replayed,
    served,
)

RECORDINGS = recordings()
NO_TRACES = pytest.mark.skip(reason=f"recorded real answers not found at {TRACES_DIR} (set AIGW_REAL_TRACES)")

CHAT_PATH = "/v1/chat/completions"
CHAT_MODEL = "qwen3-max"  # openai-chat, tools, streams tool calls
STREAM_ONLY_MODEL = "qwq-plus"  # a blocking Dify call is streamed on the wire and collected
# A customizable embedding model: it declares no dimensions, so vectors of any length are its answer.
EMBEDDING = ("recorded-embedding", "/v1/embeddings")
EMBEDDING_FORM = {"route_preset": "openai-embeddings"}
NATIVE_RERANK = ("gte-rerank-v2", "/api/v1/services/rerank/text-rerank/text-rerank")
COMPATIBLE_RERANK = ("qwen3-rerank", "/compatible-api/v1/reranks")
COHERE_RERANK = ("bge-reranker-v2-m3", "/v1/rerank")
TRANSCRIPTION = ("whisper-large-v3", "/v1/audio/transcriptions")
KINDS = ("llm", "text-embedding", "rerank", "speech2text")
BLOCK_MARK = "[Blocked by AI Gateway content security]"  # how a user sees a content-security block (README)


def _cases(keep: Callable[[Recording], bool], routes: Callable[[Recording], Iterable[tuple[str, str]]] | None = None):
    """pytest params for the recordings `keep` selects (one per route when `routes` is given)."""
    if not RECORDINGS:
        return [pytest.param(None, None, id="no-recordings", marks=NO_TRACES)]
    params = []
    for recording in filter(keep, RECORDINGS):
        for model, path in routes(recording) if routes else [(None, None)]:
            suffix = f"[{model}]" if routes else ""
            params.append(pytest.param(recording, (model, path), id=recording.id + suffix))
    return params


def _expected_class(status: int) -> type[InvokeError]:
    if status in (401, 403):
        return InvokeAuthorizationError
    if status == 429:
        return InvokeRateLimitError
    return InvokeServerUnavailableError if status >= 500 else InvokeBadRequestError


def _assert_error(caught: BaseException | None, expected: type[InvokeError], words: list[str], where: str) -> None:
    assert isinstance(caught, expected), f"{where}: want {expected.__name__}, got {caught!r}"
    for word in words:
        assert word.lower() in str(caught).lower(), f"{where}: {word!r} missing from {caught}"


def test_every_recorded_body_is_replayed() -> None:
    if not RECORDINGS:
        pytest.skip(NO_TRACES.kwargs["reason"])
    assert len(RECORDINGS) >= 44
    unknown = [r.id for r in RECORDINGS if r.kind not in KINDS]
    assert not unknown, f"recordings of a model type these tests do not replay: {unknown}"
    unlisted = sorted({body.name for body in BODIES_DIR.iterdir()} - {r.file for r in RECORDINGS})
    assert not unlisted, f"bodies without a sources.json entry, so never replayed: {unlisted}"


# ---------------------------------------------------------------------------------------------
# Chat


def _call_chat(recording: Recording, chat: Chat | None) -> tuple[list, BaseException | None]:
    """The chunks Dify receives for the call the recording answers (a blocking call yields one), and
    the error it ends in."""
    stream = bool(recording.stream)
    model = STREAM_ONLY_MODEL if recording.is_sse and not stream else CHAT_MODEL
    tools = [
        PromptMessageTool(name=call.name, description="a tool the recorded answer calls", parameters={"type": "object"})
        for call in (chat.tool_calls if chat else [])
    ]
    chunks: list = []
    with replayed(served(recording, CHAT_PATH)) as credentials:
        try:
            chunks.extend(
                adapter("llm").invoke(
                    model, credentials, [UserPromptMessage(content="hi")], {}, tools=tools or None, stream=stream
                )
            )
        except InvokeError as exc:
            return chunks, exc
    return chunks, None


def _visible(chunks: list) -> tuple[str, list[tuple[str, str, Any]], Any, str | None]:
    """(text, tool calls, usage, finish reason) as Dify receives them."""
    text = "".join(c.delta.message.content or "" for c in chunks)
    calls = [call for c in chunks for call in c.delta.message.tool_calls]
    usage = next((c.delta.usage for c in reversed(chunks) if c.delta.usage), None)
    finish = chunks[-1].delta.finish_reason if chunks else None
    return text, [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls], usage, finish


def _block_words(chat: Chat) -> list[str]:
    """What a content-security block must show: the deny text, or the risk type, level and request id."""
    try:
        deny = json.loads(chat.content)
    except ValueError:
        return [chat.content]
    lowered = {key.lower(): value for key, value in deny.items()}
    words = [str(lowered["requestid"])] if lowered.get("requestid") else []
    for detail in lowered.get("blockeddetails") or []:
        detail = {key.lower(): value for key, value in detail.items()}
        words += [str(detail["type"]), str(detail["level"])]
    return words


def check_chat(recording: Recording) -> None:
    where = f"{recording.id} ({recording.source})"
    chat = read_chat(recording) if recording.status < 400 else None
    chunks, error = _call_chat(recording, chat)
    if chat is None:
        _assert_error(error, _expected_class(recording.status), error_words(recording), where)
        return
    if chat.error is not None:
        expected = _expected_class(error_status(chat.error))
        _assert_error(error, expected, [chat.error.get("message", "")], where)
        return
    if not chat.complete:
        _assert_error(error, InvokeServerUnavailableError, ["incomplete"], where)
        assert all(c.delta.finish_reason is None for c in chunks), f"{where}: a cut answer was finished"
        return
    assert error is None, f"{where}: {error!r}"
    text, calls, usage, finish = _visible(chunks)
    if chat.model == "from-security-guard":
        assert text.startswith(BLOCK_MARK), f"{where}: {text!r}"
        for word in _block_words(chat):
            assert word in text, f"{where}: {word!r} missing from {text!r}"
    elif chat.reasoning:
        assert text == f"<think>\n{chat.reasoning}\n</think>{chat.content}", where
    else:
        assert text == chat.content, where
    assert calls == [(c.id, c.name, c.arguments) for c in chat.tool_calls], where
    assert usage is not None, where
    if chat.prompt_tokens is not None:
        assert (usage.prompt_tokens, usage.completion_tokens) == (chat.prompt_tokens, chat.completion_tokens), where
    if recording.stream and chat.finish_reason:
        assert finish == chat.finish_reason, where


@pytest.mark.parametrize(("recording", "route"), _cases(lambda r: r.kind == "llm"))
def test_chat(recording: Recording, route: object) -> None:
    check_chat(recording)


# ---------------------------------------------------------------------------------------------
# Embeddings, rerank, transcription


def _replay(recording: Recording, path: str, where: str, call: Callable[[dict[str, str]], Any]) -> Any:
    """What `call` returns with the recording served on `path`; None for an error answer, once it
    has raised the Dify error its status stands for, with the gateway's words."""
    with replayed(served(recording, path)) as credentials:
        try:
            result, error = call(credentials), None
        except InvokeError as exc:
            result, error = None, exc
    if recording.status >= 400:
        _assert_error(error, _expected_class(recording.status), error_words(recording), where)
        return None
    assert error is None, f"{where}: {error!r}"
    return result


@pytest.mark.parametrize(("recording", "route"), _cases(lambda r: r.kind == "text-embedding", lambda r: [EMBEDDING]))
def test_embeddings(recording: Recording, route: tuple[str, str]) -> None:
    where = f"{recording.id} ({recording.source})"
    model, path = route
    answer = recording.json()
    count = len(answer.get("data") or []) or 1
    texts = [f"a text the recorded answer embeds, number {i}" for i in range(count)]
    result = _replay(
        recording, path, where, lambda c: adapter("text-embedding").invoke(model, {**c, **EMBEDDING_FORM}, texts)
    )
    if result is None:
        return
    assert result.embeddings == read_vectors(answer), where
    usage = answer["usage"]
    recorded = usage.get("prompt_tokens", usage.get("total_tokens"))
    # The plugin counts texts offline when the gateway sends no count: only the gateway's own
    # number may pass, so the texts are ones whose offline count is another number.
    estimated = sum(adapter("text-embedding").get_num_tokens(model, EMBEDDING_FORM, texts))
    assert estimated != recorded, f"{where}: choose texts whose offline count is not {recorded}"
    assert result.usage.tokens == recorded, where


def _rerank_route(recording: Recording) -> list[tuple[str, str]]:
    """The route a rerank answer comes back on: DashScope's (`ds-*` bodies) or the Cohere-style one."""
    if recording.file.startswith("ds-native") or "output" in recording.json():
        return [NATIVE_RERANK]
    return [COMPATIBLE_RERANK] if recording.file.startswith("ds-") else [COHERE_RERANK]


@pytest.mark.parametrize(("recording", "route"), _cases(lambda r: r.kind == "rerank", _rerank_route))
def test_rerank(recording: Recording, route: tuple[str, str]) -> None:
    where = f"{recording.id} on {route[1]} ({recording.source})"
    model, path = route
    answer = recording.json()
    ranked = read_rerank(answer)
    documents = [f"document {i}" for i in range(max((i for i, _ in ranked), default=0) + 1)]
    result = _replay(
        recording, path, where, lambda c: adapter("rerank").invoke(model, c, "which one?", documents, None, None)
    )
    if result is None:
        return
    assert [(d.index, d.score) for d in result.docs] == ranked, where
    assert all(d.text == documents[d.index] for d in result.docs), where


@pytest.mark.parametrize(("recording", "route"), _cases(lambda r: r.kind == "speech2text", lambda r: [TRANSCRIPTION]))
def test_transcription(recording: Recording, route: tuple[str, str]) -> None:
    model, path = route
    with replayed(served(recording, path)) as credentials:
        text = adapter("speech2text").invoke(
            model, credentials, io.BytesIO(silence_wav())
        )  # any audio: the recording answers
    assert text == recording.json()["text"], f"{recording.id} ({recording.source})"


# ---------------------------------------------------------------------------------------------
# Variants: one recorded stream with one thing changed, read by the same reference


def _by_file(name: str, stream: bool = True) -> Recording | None:
    return next((r for r in RECORDINGS if r.file == name and r.stream is stream), None)


def _events(body: bytes) -> list[bytes]:
    return [event for event in body.split(b"\n\n") if event.strip()]


def _reframed(separator: bytes) -> Callable[[bytes], bytes]:
    return lambda body: body.replace(b"\n", separator)


def _without_space(body: bytes) -> bytes:
    return body.replace(b"data: ", b"data:")


def _pretty_data(body: bytes) -> bytes:
    """Each JSON event spread over several `data:` lines (legal SSE: the lines join with LF)."""
    events = []
    for event in _events(body):
        payload = event.removeprefix(b"data: ")
        if payload == b"[DONE]":
            events.append(event)
            continue
        lines = json.dumps(json.loads(payload), indent=1, ensure_ascii=False).encode().split(b"\n")
        events.append(b"\n".join(b"data: " + line for line in lines))
    return b"\n\n".join(events) + b"\n\n"


def _with_fields(body: bytes) -> bytes:
    """Comments, ids, retry hints and event names around every event."""
    return b"".join(
        b": keep-alive\nid: %d\nretry: 3000\nevent: message\n%s\n\n" % (i, e) for i, e in enumerate(_events(body))
    )


def _separators_in_text(body: bytes) -> bytes:
    """U+2028, U+2029 and U+0085 written raw inside the answer text, as ensure_ascii=False encoders do."""
    return body.replace(b'"content":" ', '"content":"\u2028 '.encode()).replace(
        b'"content":"', '"content":"\u2029\u0085'.encode(), 3
    )


def _cut_before_usage(body: bytes) -> bytes:
    """The stream ends after its finish chunk: no usage chunk, no [DONE]."""
    return b"\n\n".join(_events(body)[:-2]) + b"\n\n"


def _error_after(event: bytes) -> Callable[[bytes], bytes]:
    return lambda body: b"\n\n".join([*_events(body)[:3], event]) + b"\n\n"


_VARIANTS: list[tuple[str, bool, str, Callable[[bytes], bytes]]] = [
    ("openai-gpt4o-text-stream.sse", True, "crlf", _reframed(b"\r\n")),
    ("openai-gpt4o-text-stream.sse", True, "cr", _reframed(b"\r")),
    ("ds-qwen3max-toolcall-stream.sse", True, "crlf", _reframed(b"\r\n")),
    ("ds-qwen3max-text-stream.sse", True, "no-space-after-data", _without_space),
    ("ds-qwen3max-reasoning-stream.sse", True, "multi-line-data", _pretty_data),
    ("openai-gpt4o-parallel-tools-stream.sse", True, "multi-line-data", _pretty_data),
    ("vllm-0.24-llama-stream.sse", True, "comments-ids-retries", _with_fields),
    ("ds-qwen3max-text-stream.sse", True, "unicode-separators", _separators_in_text),
    ("ds-qwen3max-reasoning-stream.sse", False, "unicode-separators", _separators_in_text),
    ("ds-qwen3max-text-stream.sse", True, "cut-before-usage", _cut_before_usage),
    (
        "ds-qwen3max-text-stream.sse",
        True,
        "error-event-status-code-429",
        _error_after(b'event: error\ndata: {"message":"Rate limit reached for requests","status_code":429}'),
    ),
    (
        "ds-qwen3max-text-stream.sse",
        True,
        "dashscope-error-data-inspection",
        _error_after(
            b'data: {"error":{"code":"data_inspection_failed","param":null,"message":"Output data may contain'
            b' inappropriate content.","type":"data_inspection_failed"},"request_id":"rid-1"}'
        ),
    ),
]


def _variant_cases():
    if not RECORDINGS:
        return [pytest.param(None, id="no-recordings", marks=NO_TRACES)]
    params = []
    for name, stream, label, change in _VARIANTS:
        original = _by_file(name, stream)
        assert original is not None, f"{name} is not in sources.json"
        variant = dataclasses.replace(original, file=f"{name}~{label}", changed_body=change(original.body))
        params.append(pytest.param(variant, id=variant.id))
    return params


@pytest.mark.parametrize("recording", _variant_cases())
def test_chat_variant(recording: Recording) -> None:
    check_chat(recording)
