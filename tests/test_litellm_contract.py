"""The contract with LiteLLM: every function of adapters/engine/litellm_facade.py, pinned.

The façade calls LiteLLM internals (provider `*Config` classes, the stream chunk parser, the token
counter) whose signatures and results can change in any release. Each test here feeds a façade
function a fixed input, or an answer recorded from a real server (../shared/real_traces, see its
README and sources.json), and asserts the concrete values a user would get: text, reasoning,
tool-call ids, names and arguments, vectors, token counts, rerank indices and scores. After a
LiteLLM upgrade this file says, function by function, what still holds.

The recorded bodies are not part of the repository (tests/real_traces.py says where they are read
from); tests that need them skip, saying so, when they are absent.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import httpx
import pytest

from adapters.engine import litellm_facade as facade
from adapters.engine.litellm_facade import ChatTurn, ToolCallPart
from adapters.gateway.sse import EventStream
from tests.real_traces import BODIES_DIR, needs_traces

ROOT = Path(__file__).resolve().parents[1]
_REQUEST = httpx.Request("POST", "http://gw/v1/route")


def _body(name: str) -> bytes:
    return (BODIES_DIR / name).read_bytes()


def _json(name: str) -> dict:
    return json.loads(_body(name))


def _answer(name: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=_body(name), request=_REQUEST)


def _events(name: str) -> list[dict]:
    """The recorded SSE body, read by the plugin's own SSE reader (events up to [DONE])."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_body(name), request=_REQUEST)
    return list(EventStream(response, "/v1/chat/completions"))


def _turns(name: str) -> list[ChatTurn]:
    return [turn for data in _events(name) if (turn := facade.parse_chat_chunk(data=data)) is not None]


def _joined(turns: list[ChatTurn]) -> tuple[str, str]:
    return "".join(t.content or "" for t in turns), "".join(t.reasoning or "" for t in turns)


def _fragments(turns: list[ChatTurn]) -> list[ToolCallPart]:
    return [part for turn in turns for part in turn.tool_calls]


# ---------------------------------------------------------------------------------------------
# Only the façade imports LiteLLM


def _imports_litellm(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            # importlib.import_module("litellm...") / __import__("litellm...")
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            names = [str(node.args[0].value)] if called in ("import_module", "__import__") else []
        else:
            continue
        if any(name == "litellm" or name.startswith("litellm.") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_module_but_the_facade_imports_litellm() -> None:
    facade_path = ROOT / "adapters" / "engine" / "litellm_facade.py"
    offenders = {}
    for path in [ROOT / "main.py", *sorted((ROOT / "adapters").rglob("*.py"))]:
        lines = _imports_litellm(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if lines and path != facade_path:
            offenders[str(path.relative_to(ROOT))] = lines
    assert offenders == {}
    # The scan itself sees imports: the façade's own are found.
    assert _imports_litellm(ast.parse(facade_path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------
# Request bodies, from fixed inputs

_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": "https://cdn.example/a.png", "detail": "low"}},
        ],
    },
]
_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("provider", ["openai", "dashscope", "hosted_vllm"])
def test_chat_request_body_carries_messages_and_openai_params_unchanged(provider: str) -> None:
    params = {
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 100,
        "seed": 7,
        "stop": ["\n\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": _TOOLS,
        "response_format": {"type": "json_object"},
    }
    body = facade.chat_request_body(provider=provider, model="qwen-max", messages=_MESSAGES, params=params)
    assert body == {"model": "qwen-max", "messages": _MESSAGES, **params}


def test_chat_request_body_without_params_is_model_and_messages() -> None:
    messages = [{"role": "user", "content": "hi"}]
    body = facade.chat_request_body(provider="openai", model="deepseek-v3", messages=messages, params={})
    assert body == {"model": "deepseek-v3", "messages": messages}


def test_text_completion_request_body_is_prompt_and_params() -> None:
    params = {"max_tokens": 5, "stop": ["."], "stream": True, "stream_options": {"include_usage": True}}
    body = facade.text_completion_request_body(model="qwen2.5-coder", prompt="def add(a, b):", params=params)
    assert body == {"model": "qwen2.5-coder", "prompt": "def add(a, b):", **params}


@pytest.mark.parametrize("provider", ["hosted_vllm", "dashscope"])
def test_embedding_request_body_sends_dimensions_only_when_given(provider: str) -> None:
    body = facade.embedding_request_body(provider=provider, model="text-embedding-v3", texts=["a", "b"], dimensions=512)
    assert body == {"model": "text-embedding-v3", "input": ["a", "b"], "dimensions": 512}
    bare = facade.embedding_request_body(provider=provider, model="bge-m3", texts=("a",), dimensions=None)
    assert bare == {"model": "bge-m3", "input": ["a"]}


def test_a_provider_without_a_translation_is_named() -> None:
    with pytest.raises(facade.NoTranslationError, match="no embedding translation for provider 'openai'"):
        facade.embedding_request_body(provider="openai", model="m", texts=["a"], dimensions=None)
    with pytest.raises(facade.NoTranslationError, match="no transcription translation for provider 'dashscope'"):
        facade.transcription_form_fields(
            provider="dashscope", model="m", upload=("a.wav", b"", "audio/wav"), options={}
        )
    with pytest.raises(facade.NoTranslationError, match="no text-to-speech translation for provider 'openai'"):
        facade.speech_request_body(provider="openai", model="tts-1", text="Hi.", voice="alloy")


@pytest.mark.parametrize("provider", ["hosted_vllm", "dashscope"])
def test_rerank_request_body_is_cohere_style_without_return_documents(provider: str) -> None:
    body = facade.rerank_request_body(provider=provider, model="gte-rerank", query="q", documents=["a", "b"], top_n=1)
    assert body == {"model": "gte-rerank", "query": "q", "documents": ["a", "b"], "top_n": 1}
    every = facade.rerank_request_body(provider=provider, model="gte-rerank", query="q", documents=("a",), top_n=None)
    assert every == {"model": "gte-rerank", "query": "q", "documents": ["a"]}


def test_transcription_form_fields_are_the_options_without_the_file() -> None:
    fields = facade.transcription_form_fields(
        provider="openai",
        model="whisper-1",
        upload=("audio.wav", b"RIFF....WAVE", "audio/wav"),
        options={"response_format": "json", "language": "en", "prompt": "Names: Qwen"},
    )
    assert fields == {"model": "whisper-1", "response_format": "json", "language": "en", "prompt": "Names: Qwen"}


def test_speech_request_body_for_dashscope_qwen_tts() -> None:
    body = facade.speech_request_body(provider="dashscope", model="qwen-tts", text="Hello.", voice="Cherry")
    assert body == {"model": "qwen-tts", "input": {"text": "Hello.", "voice": "Cherry"}}


def test_count_tokens_uses_the_bundled_tokenizer() -> None:
    # LiteLLM's default tokenizer for names it does not know (cl100k): fixed counts, offline.
    assert facade.count_tokens(model="qwen-max", text="hello world, how are you") == 6
    assert facade.count_tokens(model="qwen-max", messages=[{"role": "user", "content": "hello world"}]) == 9
    assert facade.count_tokens(model="qwen-max", text="") == 0


# ---------------------------------------------------------------------------------------------
# Blocking chat answers, recorded


@needs_traces
def test_chat_answer_dashscope_text() -> None:
    turn = facade.parse_chat_answer(data=_json("ds-qwenplus-json.json"))
    assert turn.content.startswith("你好！我是通义千问（Qwen）") and turn.content.endswith("欢迎随时告诉我！😊")
    assert (turn.reasoning, turn.tool_calls, turn.finish_reason) == (None, (), "stop")


@needs_traces
def test_chat_answer_dashscope_tool_call() -> None:
    turn = facade.parse_chat_answer(data=_json("ds-qwen3max-toolcall-json.json"))
    assert turn.content == "" and turn.finish_reason == "tool_calls"
    assert turn.tool_calls == (
        ToolCallPart(
            index=0, id="call_962bfd2ab8f54b89a1161356", name="weather", arguments='{"location": "San Francisco"}'
        ),
    )


@pytest.mark.parametrize(
    ("name", "reasoning_start", "content_start"),
    [
        ("ds-qwenplus-reasoning-json.json", "Okay, so I need to calculate 17 multiplied by 23.", "391"),
        ("deepseek-reasoner-json.json", "", "Crossing the street safely involves careful observation"),
        ("sglang-kimi-k3-json.json", "The user wants me to return a simple JSON object", '```json\n{"status": "ok"}'),
    ],
)
@needs_traces
def test_chat_answer_reasoning_is_read_from_reasoning_content(
    name: str, reasoning_start: str, content_start: str
) -> None:
    data = _json(name)
    turn = facade.parse_chat_answer(data=data)
    assert turn.content.startswith(content_start)
    assert turn.reasoning == data["choices"][0]["message"]["reasoning_content"]
    assert turn.reasoning.startswith(reasoning_start)


@needs_traces
def test_chat_answer_security_guard_block_keeps_the_deny_body_as_content() -> None:
    turn = facade.parse_chat_answer(data=_json("higress-secguard-json-v2.json"))
    assert json.loads(turn.content)["blockedDetails"] == [
        {"Suggestion": "block", "Type": "contentModeration", "Level": "high"}
    ]


def test_text_completion_answer_text_is_the_content() -> None:
    data = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "qwen2.5-coder",
        "choices": [{"index": 0, "text": "    return a + b", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11},
    }
    assert facade.parse_text_completion_answer(data=data) == ChatTurn(content="    return a + b", finish_reason="stop")


# ---------------------------------------------------------------------------------------------
# Stream chunks, recorded


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("openai-gpt4o-text-stream.sse", "The capital of Mexico is Mexico City."),
        ("vllm-0.24-llama-stream.sse", "1, 2, 3, 4, 5"),
        ("hf-router-novita-stream.sse", "Paris"),
        (
            "higress-aicache-stream.sse",
            "我是通义千问，由阿里云开发的AI助手。我可以回答各种问题、提供信息和与用户进行对话。有什么我可以帮助你的吗？",
        ),
    ],
)
@needs_traces
def test_stream_text(name: str, text: str) -> None:
    turns = _turns(name)
    assert _joined(turns) == (text, "")
    assert [t.finish_reason for t in turns if t.finish_reason] == ["stop"]


@needs_traces
def test_stream_dashscope_text_has_every_content_delta() -> None:
    events = _events("ds-qwen3max-text-stream.sse")
    expected = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"][:1])
    content, _ = _joined(_turns("ds-qwen3max-text-stream.sse"))
    assert content == expected and content.startswith('## The Festival of Shared Stories: "Taleweave Day"')


@pytest.mark.parametrize(
    ("name", "reasoning_start", "content"),
    [
        (
            "deepseek-reasoner-stream.sse",
            'Hmm, the user just said "Hello".',
            "Hello there! 😊 How can I help you today?",
        ),
        # `reasoning` (OpenRouter, vLLM >= 0.10, Groq) is read as reasoning too.
        ("openrouter-reasoning-field-stream.sse", "This is a simple arithmetic question.", "2 + 2 = 4"),
    ],
)
@needs_traces
def test_stream_reasoning(name: str, reasoning_start: str, content: str) -> None:
    text, reasoning = _joined(_turns(name))
    assert text == content and reasoning.startswith(reasoning_start)


@needs_traces
def test_stream_dashscope_reasoning_then_answer() -> None:
    text, reasoning = _joined(_turns("ds-qwen3max-reasoning-stream.sse"))
    assert reasoning.startswith("We are asked: \"How many 'r's are in the word 'strawberry'?\"")
    assert text.startswith('The word **"strawberry"** contains **3** instances of the letter **"r"**.')


@needs_traces
def test_stream_openai_parallel_tool_calls() -> None:
    turns = _turns("openai-gpt4o-parallel-tools-stream.sse")
    assert [(p.index, p.id, p.name, p.arguments) for p in _fragments(turns)] == [
        (0, "call_3rqTYrA6H21AYUaRGP4F66oq", "get_country", ""),
        (0, None, None, "{}"),
        (1, "call_Xw9XMKBJU48kAAd78WgIswDx", "get_product_name", ""),
        (1, None, None, "{}"),
    ]
    assert [t.finish_reason for t in turns if t.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize(
    ("name", "call_id", "function", "arguments"),
    [
        ("openai-gpt4o-tool-args-stream.sse", "call_Vz0Sie91Ap56nH0ThKGrZXT7", "get_weather", {"city": "Mexico City"}),
        ("ds-qwen3max-toolcall-stream.sse", "call_eee11723464a4b9eb8cee71d", "weather", {"location": "San Francisco"}),
        (
            "deepseek-reasoner-toolcall-stream.sse",
            "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF",
            "weather",
            {"location": "San Francisco"},
        ),
    ],
)
@needs_traces
def test_stream_tool_call_arguments_in_fragments(name: str, call_id: str, function: str, arguments: dict) -> None:
    fragments = _fragments(_turns(name))
    first = fragments[0]
    assert (first.index, first.id, first.name) == (0, call_id, function)
    # Later fragments name no function (DashScope repeats an empty id); their arguments join up.
    assert all(p.name is None and p.index == 0 and not p.id for p in fragments[1:])
    assert json.loads("".join(p.arguments or "" for p in fragments)) == arguments


@needs_traces
def test_stream_sglang_prose_then_two_parallel_calls() -> None:
    turns = _turns("sglang-dsv4-parallel-tools-stream.sse")
    text, reasoning = _joined(turns)
    assert text == "I'll get the weather for both cities.\n\n"
    assert reasoning.startswith("The user wants weather in Paris and Tokyo.")
    calls: dict[int, list[ToolCallPart]] = {}
    for part in _fragments(turns):
        calls.setdefault(part.index, []).append(part)
    assert {
        i: (ps[0].id, ps[0].name, json.loads("".join(p.arguments or "" for p in ps))) for i, ps in calls.items()
    } == {
        0: ("call_361011ce08d84cc6971c6d8a", "get_weather", {"city": "Paris"}),
        1: ("call_3aaf5236eecc4614aba70f6b", "get_weather", {"city": "Tokyo"}),
    }


@needs_traces
def test_stream_usage_only_chunk_has_no_turn() -> None:
    events = _events("ds-qwen3max-toolcall-stream.sse")
    assert events[-1]["choices"] == [] and events[-1]["usage"]["prompt_tokens"] == 295
    assert facade.parse_chat_chunk(data=events[-1]) is None


_STREAMS = [
    "openai-gpt4o-text-stream.sse",
    "openai-gpt4o-parallel-tools-stream.sse",
    "openai-gpt4o-tool-args-stream.sse",
    "ds-qwen3max-text-stream.sse",
    "ds-qwen3max-reasoning-stream.sse",
    "ds-qwen3max-toolcall-stream.sse",
    "deepseek-reasoner-stream.sse",
    "deepseek-reasoner-toolcall-stream.sse",
    "vllm-0.24-llama-stream.sse",
    "sglang-dsv4-parallel-tools-stream.sse",
    "hf-router-novita-stream.sse",
    "openrouter-reasoning-field-stream.sse",
    "higress-secguard-stream-v1.sse",
    "higress-secguard-stream-v2.sse",
    "higress-aicache-stream.sse",
]


def _read_by_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facade, "_lean_turn", lambda data: None)


@pytest.mark.parametrize("name", _STREAMS)
@needs_traces
def test_the_lean_path_gives_what_litellm_gives(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_chat_chunk skips LiteLLM's parser for chunks of answer pieces; LiteLLM must read them the same."""
    lean = [facade.parse_chat_chunk(data=data) for data in _events(name)]
    _read_by_litellm(monkeypatch)
    assert lean == [facade.parse_chat_chunk(data=data) for data in _events(name)]


_OTHER = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": None}
_LEAN_DELTAS = [
    {"content": "text"},
    {"role": "assistant", "content": "", "refusal": None},
    {"content": "text", "reasoning_content": None},
    {"content": None, "reasoning_content": "thinking"},
    {"content": "", "reasoning_content": "thinking"},
    {"reasoning": "thinking", "content": None},
    {"content": "", "reasoning_content": ""},
    {"content": "text", "reasoning_content": "thinking"},
    {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
    {"tool_calls": [{"index": 1, "id": "", "type": "function", "function": {"arguments": "ty"}}]},
    {"content": None, "tool_calls": [{"index": 0, "id": None, "function": {"name": None, "arguments": ""}}]},
    {"content": "", "tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
]
_LITELLM_DELTAS = [
    {"role": "assistant", "content": None},
    {"reasoning_content": "a", "reasoning": "b"},
    {"reasoning": "thinking", "reasoning_details": [{"type": "reasoning.text", "text": "thinking"}]},
    {"reasoning": "thinking", "channel": "analysis"},
    {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
    {"tool_calls": [{"function": {"arguments": "no index"}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": None}}]},
    {"tool_calls": []},
    {"content": "text", "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    {"content": 7},
]


def _chunk(delta: dict, **choice: object) -> dict:
    return {**_OTHER, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None, **choice}]}


@pytest.mark.parametrize(("delta", "lean"), [(d, True) for d in _LEAN_DELTAS] + [(d, False) for d in _LITELLM_DELTAS])
def test_each_kind_of_chunk_reads_as_litellm_reads_it(delta: dict, lean: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (facade._lean_turn(_chunk(delta)) is not None) == lean
    turn = facade.parse_chat_chunk(data=_chunk(delta))
    _read_by_litellm(monkeypatch)
    assert turn == facade.parse_chat_chunk(data=_chunk(delta))


def test_a_finish_reason_or_a_second_choice_goes_to_litellm() -> None:
    assert facade._lean_turn(_chunk({"content": "end"}, finish_reason="stop")) is None
    two = _chunk({"content": "a"})
    two["choices"].append({"index": 1, "delta": {"content": "b"}, "finish_reason": None})
    assert facade._lean_turn(two) is None


@pytest.mark.parametrize(
    ("name", "lean", "events"),
    [
        # `"usage": null` on every chunk (OpenAI with include_usage, DashScope) is no usage.
        ("openai-gpt4o-text-stream.sse", 9, 11),
        ("ds-qwen3max-text-stream.sse", 172, 174),
        ("vllm-0.24-llama-stream.sse", 14, 16),
        # Reasoning with `"content": null`, then text with `"reasoning_content": null`.
        ("ds-qwen3max-reasoning-stream.sse", 273, 275),
        ("deepseek-reasoner-stream.sse", 210, 211),
        # Tool-call arguments continued by index alone (DeepSeek, OpenAI) or with DashScope's `"id": ""`.
        ("deepseek-reasoner-toolcall-stream.sse", 50, 52),
        ("openai-gpt4o-tool-args-stream.sse", 6, 9),
        ("ds-qwen3max-toolcall-stream.sse", 3, 6),
    ],
)
@needs_traces
def test_the_lean_path_is_taken_for_answer_pieces(name: str, lean: int, events: int) -> None:
    recorded = _events(name)
    turns = [facade._lean_turn(data) for data in recorded]
    assert (sum(turn is not None for turn in turns), len(recorded)) == (lean, events)
    assert _joined([turn for turn in turns if turn is not None]) == _joined(_turns(name))


_JSON_ANSWERS = [
    "ds-qwenplus-json.json",
    "ds-qwenplus-reasoning-json.json",
    "ds-qwen3max-toolcall-json.json",
    "deepseek-reasoner-json.json",
    "sglang-kimi-k3-json.json",
    "higress-qwen-turbo-json.json",
    "higress-secguard-json-v2.json",
    "higress-aicache-json.json",
]


@pytest.mark.parametrize("name", _JSON_ANSWERS)
@needs_traces
def test_the_lean_answer_gives_what_litellm_gives(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    turn = facade.parse_chat_answer(data=_json(name))
    monkeypatch.setattr(facade, "_lean_answer", lambda data: None)
    assert turn == facade.parse_chat_answer(data=_json(name))


@needs_traces
def test_the_lean_answer_is_taken_for_a_text_answer() -> None:
    assert facade._lean_answer(_json("ds-qwenplus-json.json")) is not None
    assert facade._lean_answer(_json("higress-qwen-turbo-json.json")) is not None
    # Reasoning and tool calls go through LiteLLM.
    assert facade._lean_answer(_json("ds-qwenplus-reasoning-json.json")) is None
    assert facade._lean_answer(_json("ds-qwen3max-toolcall-json.json")) is None


def _answer_data(message: dict, finish: object) -> dict:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}  # fmt: skip


@pytest.mark.parametrize(
    ("message", "finish", "lean"),
    [
        ({"role": "assistant", "content": "hi"}, "stop", True),
        ({"role": "assistant", "content": "", "refusal": None, "tool_calls": None}, "length", True),
        ({"content": "hi", "reasoning_content": None}, "stop", True),
        ({"role": "assistant", "content": "<think>a</think>b"}, "stop", False),  # LiteLLM: reasoning "a"
        ({"role": "assistant", "content": "hi"}, None, False),  # LiteLLM: "stop"
        ({"role": "assistant", "content": "hi"}, "eos", False),  # LiteLLM: "stop"
        ({"role": "assistant", "content": "hi", "annotations": []}, "stop", False),
        ({"role": "assistant", "content": None}, "stop", False),
    ],
)
def test_each_kind_of_answer_reads_as_litellm_reads_it(
    message: dict, finish: object, lean: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (facade._lean_answer(_answer_data(message, finish)) is not None) == lean
    turn = facade.parse_chat_answer(data=_answer_data(message, finish))
    monkeypatch.setattr(facade, "_lean_answer", lambda data: None)
    assert turn == facade.parse_chat_answer(data=_answer_data(message, finish))


def test_text_completion_chunk_text_is_the_content() -> None:
    data = {"id": "c", "object": "text_completion", "model": "m", "choices": [{"index": 0, "text": "    re"}]}
    assert facade.parse_text_completion_chunk(data=data) == ChatTurn(content="    re")
    done = {"id": "c", "model": "m", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
    assert facade.parse_text_completion_chunk(data=done).finish_reason == "length"
    assert facade.parse_text_completion_chunk(data={"id": "c", "model": "m", "choices": []}) is None


# ---------------------------------------------------------------------------------------------
# Embedding, rerank and transcription answers, recorded


@pytest.mark.parametrize("provider", ["hosted_vllm", "dashscope"])
@needs_traces
def test_embedding_answer_float_vectors(provider: str) -> None:
    answer = facade.parse_embedding_answer(
        provider=provider, model="text-embedding-3-small", response=_answer("openai-embeddings-float.json")
    )
    assert [index for index, _ in answer.indexed] == [0, 1]
    assert answer.indexed[0][1][:3] == [0.0057293195, -0.012727811, 0.020042092]
    assert answer.indexed[1][1][:3] == [-0.037104916, -0.05178114, -0.008340587]
    assert answer.tokens == 12


@pytest.mark.parametrize(
    ("name", "tokens"),
    [("openai-embeddings-base64.json", 2), ("voyage-embeddings-base64.json", 3)],  # voyage: total_tokens only
)
@needs_traces
def test_embedding_answer_base64_strings_come_back_undecoded(name: str, tokens: int) -> None:
    recorded = [item["embedding"] for item in _json(name)["data"]]
    answer = facade.parse_embedding_answer(provider="hosted_vllm", model="m", response=_answer(name))
    assert [vector for _, vector in answer.indexed] == recorded  # the dialect decodes them
    assert all(len(base64.b64decode(v)) % 4 == 0 for v in recorded)
    assert answer.tokens == tokens


@pytest.mark.parametrize(
    ("name", "pairs"),
    [
        ("cohere-v2-rerank.json", [(1, 0.10183054), (0, 0.03762639)]),
        ("ds-compat-qwen3-rerank.json", [(0, 0.9334521178273196), (2, 0.34100082626411193)]),
        ("llamacpp-qwen3-reranker.json", [(0, 0.9836259484291077), (2, 0.10805725306272507)]),
    ],
)
@pytest.mark.parametrize("provider", ["hosted_vllm", "dashscope"])
@needs_traces
def test_rerank_answer_indices_and_scores_as_sent(provider: str, name: str, pairs: list) -> None:
    assert facade.parse_rerank_answer(provider=provider, model="m", response=_answer(name)) == pairs


@needs_traces
def test_rerank_answer_together_with_empty_documents() -> None:
    pairs = facade.parse_rerank_answer(provider="hosted_vllm", model="m", response=_answer("together-rerank.json"))
    assert pairs == [(0, 0.6475887154399037), (5, 0.6323295373206566)]


@needs_traces
def test_rerank_answer_without_results_is_an_error_not_an_empty_ranking() -> None:
    # Voyage lists its results under `data`; nothing must come back as "no document is relevant".
    with pytest.raises(Exception, match="No results"):
        facade.parse_rerank_answer(provider="hosted_vllm", model="m", response=_answer("voyage-rerank.json"))


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("openai-transcription-doc.json", "Imagine the wildest idea that you've ever had"),
        ("openai-transcription-verbose.json", "Galileo was an American robotic space program"),
    ],
)
@needs_traces
def test_transcription_answer_text(name: str, start: str) -> None:
    text = facade.parse_transcription_answer(provider="openai", model="whisper-1", response=_answer(name))
    assert text == _json(name)["text"] and text.startswith(start)
