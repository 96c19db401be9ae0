"""How large one message to Dify's plugin daemon may be, measured as the SDK writes it.

The daemon reads the plugin's stdout with a line scanner whose buffer is capped at 5 MiB
(PLUGIN_RUNTIME_MAX_BUFFER_SIZE, 5,242,880 bytes, newline included). A longer line fails its reader:
that result is lost and, because one plugin process serves every workspace of a Dify install, so is
every other session of the process. The SDK writes each result (an LLM stream chunk, an embedding
result, a transcript, a TTS audio chunk) as one line: pydantic's JSON of it, in UTF-8, inside a
small envelope naming the session.

Sizes are counted in those bytes. pydantic writes non-ASCII text as raw UTF-8 (up to 4 bytes a
character) and escapes quotes, backslashes and control characters (`\\u0001`: 6 bytes for one
character), so one character of text costs at most WORST_CHAR_BYTES. A float costs at most
WORST_FLOAT_BYTES with its comma (`-2.2250738585072014e-308,`). TTS audio goes as hex, 2 bytes a byte.

Two budgets:
- MAX_RESULT_BYTES: what a result may serialize to at most; above it the plugin answers with an
  error naming the size instead of writing the line.
- PLANNED_RESULT_BYTES (4 MiB): what the plugin plans for when it sizes things in advance (the
  texts per embedding call Dify is told, the pieces a long stream delta is cut into). The fifth of
  the limit left over is the safety margin for what the plan cannot see exactly (the envelope, the
  model's name, the usage, a float longer than expected).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel
from pydantic_core import to_json

from adapters.cooperative import give_way

DAEMON_LINE_LIMIT: Final = 5 * 1024 * 1024
# The envelope around a result ({"event":"session","session_id":"<uuid>","data":{"type":"stream",
# "data":…}}), the line end and the blank line after it take ~110 bytes; rounded up generously.
ENVELOPE_BYTES: Final = 1024
MAX_RESULT_BYTES: Final = DAEMON_LINE_LIMIT - ENVELOPE_BYTES
PLANNED_RESULT_BYTES: Final = 4 * 1024 * 1024

WORST_CHAR_BYTES: Final = 6
WORST_FLOAT_BYTES: Final = 25
# Characters of text in one stream chunk: whatever they are, the chunk stays within the plan.
TEXT_CHARS_PER_CHUNK: Final = PLANNED_RESULT_BYTES // WORST_CHAR_BYTES
# Audio bytes in one TTS chunk (hex doubles them), a quarter of the limit.
AUDIO_BYTES_PER_CHUNK: Final = 1024 * 1024

# Dimensions assumed for an embedding model that declares no vector size: the largest of the common
# embedding models (Qwen3-Embedding-8B and NV-Embed-v2 return 4,096; text-embedding-3-large 3,072).
ASSUMED_DIMENSIONS: Final = 4096
# Brackets and comma around one vector, and the rest of an embedding result (model, usage).
_VECTOR_FRAME_BYTES: Final = 3
_EMBEDDING_RESULT_FRAME_BYTES: Final = 1024


def serialized_size(value: Any) -> int:
    """Bytes of `value` as the SDK writes it: pydantic's JSON, UTF-8."""
    # The serializer's bytes, not model_dump_json()'s str: encoding that again copied the whole answer.
    if isinstance(value, BaseModel):
        return len(value.__pydantic_serializer__.to_json(value))
    return len(to_json(value))


def oversize(value: Any, worst_case: int) -> int | None:
    """The serialized size of `value` if it is over MAX_RESULT_BYTES, else None.

    `worst_case` is an upper bound of that size the caller computes cheaply from lengths; when it
    fits, nothing is serialized (the normal case), so only a result near the limit is measured twice.
    """
    if worst_case <= MAX_RESULT_BYTES:
        return None
    give_way()  # serializing megabytes is a stage of its own: not added to the parse before it
    size = serialized_size(value)
    give_way()
    return size if size > MAX_RESULT_BYTES else None


def too_large(what: str, size: int) -> str:
    """The words of the error for a result that cannot be sent."""
    return (
        f"{what} would be a {size:,}-byte message to Dify, and Dify's plugin daemon reads at most "
        f"{DAEMON_LINE_LIMIT:,} bytes (5 MiB) per message"
    )


def text_worst_case(*texts: str | None) -> int:
    return WORST_CHAR_BYTES * sum(len(text) for text in texts if text)


def text_pieces(text: str) -> list[str]:
    """`text` cut into pieces of at most TEXT_CHARS_PER_CHUNK characters (one piece if it is shorter)."""
    if len(text) <= TEXT_CHARS_PER_CHUNK:
        return [text]
    return [text[start : start + TEXT_CHARS_PER_CHUNK] for start in range(0, len(text), TEXT_CHARS_PER_CHUNK)]


def vector_bytes(dimensions: int) -> int:
    """The most one embedding vector of `dimensions` floats serializes to."""
    return dimensions * WORST_FLOAT_BYTES + _VECTOR_FRAME_BYTES


def embedding_worst_case(vectors: list[list[float]]) -> int:
    return _EMBEDDING_RESULT_FRAME_BYTES + sum(vector_bytes(len(vector)) for vector in vectors)


def texts_per_result(dimensions: int | None) -> int:
    """How many vectors of `dimensions` floats (None: ASSUMED_DIMENSIONS) one result can plan to carry."""
    room = PLANNED_RESULT_BYTES - _EMBEDDING_RESULT_FRAME_BYTES
    return max(1, room // vector_bytes(dimensions or ASSUMED_DIMENSIONS))
