"""Reading the gateway's answers, shared by the dialects.

A dialect reads a finished httpx response through LiteLLM's parser (adapters/engine/litellm_facade.py)
or reads the JSON itself for the DashScope-native formats LiteLLM does not speak. Either way an
answer the plugin cannot use (not JSON, a field missing, an index out of range) becomes
InvokeServerUnavailableError naming the route: the gateway said 200, but nothing usable came back.
These errors say what was wrong (which field, which input, how long the body was) and never quote
the answer: it is the user's data, and errors travel to Dify's logs. Vectors and scores are
checked here once for every embedding and rerank dialect.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeError

from adapters.cooperative import give_way
from adapters.dialects.kinds import EmbeddingBatch
from adapters.gateway.errors import stream_error, why_unreadable

# The model a chat answer names when Higress' content security (ai-security-guard) wrote it instead
# of the model: its `content` is the deny text or body (alibaba/higress ai-security-guard config.go).
SECURITY_GUARD_MODEL = "from-security-guard"


def route_path(response: httpx.Response) -> str:
    return response.request.url.path


@contextmanager
def unusable_answer(path: str, what: str = "the answer") -> Iterator[None]:
    """Maps anything raised while reading `what` to 'the answer is unusable' (InvokeErrors pass).

    Reading an answer is a stage of its own (LiteLLM's parse of a multi-megabyte body is one long
    run of C and Python), so the hub gets its turn before and after it: stages run back to back
    would hold the hub for their sum.
    """
    give_way()
    try:
        yield
    except InvokeError:
        raise
    except Exception as exc:
        raise unreadable(path, what, exc) from exc
    give_way()


def unreadable(path: str, what: str, exc: Exception) -> InvokeError:
    """The 'answer is unusable' error for `exc`, raised while reading `what` (as unusable_answer raises it)."""
    return stream_error(path, f"{what} could not be read ({why_unreadable(exc)})")


def json_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer."""
    path = route_path(response)
    give_way()
    try:
        data = response.json()
    except ValueError as exc:
        raise stream_error(path, f"the body is not JSON ({body_size(response)})") from exc
    give_way()
    if not isinstance(data, dict):
        raise stream_error(path, f"expected a JSON object, got a JSON {type(data).__name__}")
    return data


def body_size(response: httpx.Response) -> str:
    """How long a body is and what it says it is, e.g. "27 bytes of text/html"."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    return f"{len(response.content)} bytes of {content_type}"


def required_field(data: Any, *keys: str, path: str) -> Any:
    """data[k1][k2]…, or an 'unusable answer' error naming the missing field."""
    for depth, key in enumerate(keys):
        if not isinstance(data, dict) or key not in data:
            raise stream_error(path, f"the answer has no {'.'.join(keys[: depth + 1])}")
        data = data[key]
    return data


def by_index(pairs: list[tuple[Any, Any]], count: int, path: str, what: str, *, complete: bool) -> dict[int, Any]:
    """Values keyed by the answer's input index; an index out of range or repeated is an error, and
    with `complete` so is an input without a value."""
    found: dict[int, Any] = {}
    for index, value in pairs:
        if isinstance(index, bool) or not isinstance(index, int):
            raise stream_error(path, f"the {what} index is a {type(index).__name__}, not an input position")
        if not 0 <= index < count or index in found:
            raise stream_error(path, f"{what} index {index} is out of range or repeated ({count} inputs sent)")
        found[index] = value
    if complete and len(found) < count:
        missing = [i for i in range(count) if i not in found]
        raise stream_error(path, f"no {what} for input(s) {missing[:10]} of the {count} sent")
    return found


# A parsed JSON number is exactly an int or a float (a bool is its own type here, as it must be).
# Performance: checking the types through map() runs in C, ~12x faster than an isinstance() test per
# value (a 1024-dimension vector: 834 -> 66 us on the loaded benchmark machine, 64 of them per call).
_NUMBER_TYPES = frozenset({int, float})


def _vector(value: Any, index: int, path: str) -> list[float]:
    if isinstance(value, list):
        if not _NUMBER_TYPES.issuperset(map(type, value)):
            raise stream_error(path, f"embedding {index} holds values that are not numbers")
        return value
    if isinstance(value, str):
        # OpenAI's `encoding_format: base64`: little-endian float32 values.
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise stream_error(path, f"embedding {index} is a string of {len(value)} characters, not base64") from exc
        if len(raw) % 4:
            raise stream_error(path, f"base64 embedding {index} has {len(raw)} bytes, not whole float32 values")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    raise stream_error(path, f"embedding {index} is a {type(value).__name__}, not a list of numbers")


def embedding_batch(
    pairs: list[tuple[Any, Any]], tokens: Any, *, count: int, dimensions: int | None, path: str
) -> EmbeddingBatch:
    """The vectors of (input index, embedding) pairs in input order, every input given exactly one."""
    found = by_index(pairs, count, path, "embedding", complete=True)
    vectors = []
    for i in range(count):
        give_way()  # the type check of 600,000 floats took ~20 ms idle: a turn between vectors
        vectors.append(_vector(found[i], i, path))
    if dimensions and any(len(v) != dimensions for v in vectors):
        sizes = sorted({len(v) for v in vectors})
        raise stream_error(path, f"{dimensions} dimensions were asked for, the vectors have {sizes}")
    # LiteLLM fills absent usage with zeros; a zero count for real texts means "not sent".
    return EmbeddingBatch(vectors, tokens if isinstance(tokens, int) and tokens > 0 else None)


def rerank_scores(pairs: list[tuple[Any, Any]], *, count: int, path: str) -> dict[int, float]:
    """Input index → score of (input index, relevance_score) pairs; the scores must be numbers."""
    scores = by_index(pairs, count, path, "rerank result", complete=False)
    for index, score in scores.items():
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise stream_error(path, f"the relevance_score of input {index} is a {type(score).__name__}, not a number")
    return {index: float(score) for index, score in scores.items()}
