"""LLM answers in messages the plugin daemon can read: each chunk under its 5 MiB line limit.

What Dify can take apart, and so what may be split (langgenius/dify, api/core/model_runtime/
model_providers/__base/large_language_model.py and api/core/agent/fc_agent_runner.py):
- a streamed answer's text: Dify concatenates the content of every chunk, so a long delta goes out
  as several chunks of at most TEXT_CHARS_PER_CHUNK characters;
- a streamed answer's tool calls: the agent runner extends its list with each chunk's tool calls,
  so complete calls can go in several chunks; ONE call cannot (its arguments must be whole JSON),
  and a call too large for one message is a bad request naming its size;
- a blocking answer cannot be split at all: Dify builds it from the first chunk alone, so one too
  large for a message is a bad request naming its size (streaming the same answer works).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta, LLMUsage
from dify_plugin.entities.model.message import AssistantPromptMessage

from adapters.catalog.loader import CatalogModel
from adapters.message_size import (
    MAX_RESULT_BYTES,
    PLANNED_RESULT_BYTES,
    oversize,
    serialized_size,
    text_pieces,
    text_worst_case,
    too_large,
)
from adapters.models.base import bad_request

ToolCall = AssistantPromptMessage.ToolCall

# A chunk's fields besides its text and tool calls (model, index, usage, finish reason).
_CHUNK_FRAME_BYTES = 1024


def _calls_worst_case(calls: Sequence[ToolCall]) -> int:
    return sum(text_worst_case(c.id, c.function.name, c.function.arguments) + 64 for c in calls)


def _call_groups(model: CatalogModel, calls: Sequence[ToolCall]) -> list[list[ToolCall]]:
    """The calls in order, in groups that each fit in one chunk."""
    groups: list[list[ToolCall]] = [[]]
    used = 0
    for call in calls:
        size = serialized_size(call)
        if size > MAX_RESULT_BYTES - _CHUNK_FRAME_BYTES:
            what = f"the tool call {call.function.name!r} ({len(call.function.arguments):,} characters of arguments)"
            raise bad_request(model, too_large(what, size) + "; Dify takes a tool call whole, so it cannot be split.")
        if groups[-1] and used + size > PLANNED_RESULT_BYTES:
            groups.append([])
            used = 0
        groups[-1].append(call)
        used += size
    return groups


def closing_chunks(
    model: CatalogModel, index: int, content: str, calls: Sequence[ToolCall], usage: LLMUsage, finish_reason: str
) -> Iterator[LLMResultChunk]:
    """The end of a stream: `content`, the tool calls, then usage and finish reason on the last chunk.

    One chunk, unless they add up to megabytes: then the text in pieces, then the calls in groups.
    """
    if text_worst_case(content) + _calls_worst_case(calls) <= PLANNED_RESULT_BYTES:
        parts = [AssistantPromptMessage(content=content, tool_calls=list(calls))]
    else:
        parts = [AssistantPromptMessage(content=piece) for piece in text_pieces(content)] if content else []
        parts += [AssistantPromptMessage(content="", tool_calls=group) for group in _call_groups(model, calls) if group]
    for offset, message in enumerate(parts[:-1]):
        yield LLMResultChunk(model=model.name, delta=LLMResultChunkDelta(index=index + offset, message=message))
    yield LLMResultChunk(
        model=model.name,
        delta=LLMResultChunkDelta(
            index=index + len(parts) - 1, message=parts[-1], usage=usage, finish_reason=finish_reason
        ),
    )


def deliverable(model: CatalogModel, result: LLMResult) -> LLMResult:
    """A blocking answer, if it fits in the one message Dify reads it from; else a bad request naming its size."""
    message = result.message
    content = message.content if isinstance(message.content, str) else ""
    worst = text_worst_case(content) + _calls_worst_case(message.tool_calls) + _CHUNK_FRAME_BYTES
    if worst <= MAX_RESULT_BYTES or (size := oversize(result.to_llm_result_chunk(), worst)) is None:
        return result
    calls = f" and {len(message.tool_calls)} tool call(s)" if message.tool_calls else ""
    raise bad_request(
        model,
        too_large(f"the answer ({len(content):,} characters{calls})", size)
        + "; Dify reads a blocking answer from one message, so it cannot be split: stream the answer instead, "
        "or ask for fewer tokens (max_tokens).",
    )
