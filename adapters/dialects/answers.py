"""Reading the gateway's non-chat answers: LiteLLM's provider parsers outside LiteLLM's call machinery.

The embedding, rerank, transcription and speech adapters hand a finished httpx response to a
LiteLLM `transform_*_response` method, or read the JSON themselves for the DashScope-native
dialects LiteLLM does not speak. Either way an answer the plugin cannot use (not JSON, a field
missing, an index out of range) becomes InvokeServerUnavailableError naming the route: the
gateway said 200, but nothing usable came back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeBadRequestError, InvokeError

from adapters.catalog.loader import CatalogModel
from adapters.gateway.errors import stream_error


def bad_request(model: CatalogModel, problem: str) -> InvokeBadRequestError:
    """Bad invocation input, raised before any request is sent."""
    return InvokeBadRequestError(f"Model {model.name!r}: {problem}")


def route_path(response: httpx.Response) -> str:
    return response.request.url.path


@contextmanager
def unusable_answer(path: str) -> Iterator[None]:
    """Maps anything raised while reading an answer to 'the answer is unusable' (InvokeErrors pass)."""
    try:
        yield
    except InvokeError:
        raise
    except Exception as exc:
        raise stream_error(path, f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def json_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer."""
    path = route_path(response)
    try:
        data = response.json()
    except ValueError as exc:
        raise stream_error(path, f"the body is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise stream_error(path, f"expected a JSON object, got {type(data).__name__}")
    return data


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
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count or index in found:
            raise stream_error(path, f"{what} index {index!r} is out of range or repeated ({count} inputs sent)")
        found[index] = value
    if complete and len(found) < count:
        missing = [i for i in range(count) if i not in found]
        raise stream_error(path, f"no {what} for input(s) {missing[:10]} of the {count} sent")
    return found
