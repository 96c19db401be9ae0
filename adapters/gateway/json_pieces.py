"""A JSON answer parsed in pieces, with the hub's turn between them.

`json.loads` of a multi-megabyte body is one C call that holds the gevent hub (and, in a real
thread, the GIL) from start to end: 16 MiB of embedding floats took ~1.1 s on the loaded 2-core
machine, during which no other session and no heartbeat ran. Nearly all of a large answer sits in
the arrays of its top-level object (`data` of an embedding answer, `choices`, `results`), so those
are read element by element here, with `give_way()` between elements; everything else is read by
the same C scanner `json.loads` uses, so the value is exactly what `json.loads` returns (the same
numbers, NaN and duplicate keys, the same errors for what is not JSON).

What stays in one piece is one element of such an array, or a value outside one: a single
vector, or the one long text of a chat answer.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from adapters.cooperative import give_way

_DECODER: Final = json.JSONDecoder()
_SPACE: Final = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.loads skips it


def loads_in_pieces(body: bytes | str) -> Any:
    """What `json.loads(body)` returns; a top-level object's arrays are read one element at a time."""
    # As json.loads decodes bytes: UTF-8, -16 or -32 by the first bytes.
    text = body.decode(json.detect_encoding(body), "surrogatepass") if isinstance(body, bytes) else body
    give_way()  # decoding megabytes is a stage of its own
    start = _skip_space(text, 0)
    if not text.startswith("{", start):
        return json.loads(text)
    value, end = _object(text, start + 1)
    if _skip_space(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _object(text: str, at: int) -> tuple[dict[str, Any], int]:
    """The members of the object whose `{` ends at `at`, and the index after its `}`."""
    members: dict[str, Any] = {}
    at = _skip_space(text, at)
    if text.startswith("}", at):
        return members, at + 1
    while True:
        if not text.startswith('"', at):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
        key, at = _DECODER.raw_decode(text, at)
        at = _skip_space(text, at)
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _skip_space(text, at + 1)
        if text.startswith("[", at):
            members[key], at = _array(text, at + 1)
        else:
            members[key], at = _DECODER.raw_decode(text, at)
        ended, at = _next_item(text, at, "}")
        if ended:
            return members, at


def _array(text: str, at: int) -> tuple[list[Any], int]:
    """The elements of the array whose `[` ends at `at`, a hub turn between them, and the index after `]`."""
    elements: list[Any] = []
    at = _skip_space(text, at)
    if text.startswith("]", at):
        return elements, at + 1
    while True:
        element, at = _DECODER.raw_decode(text, at)
        elements.append(element)
        give_way()
        ended, at = _next_item(text, at, "]")
        if ended:
            return elements, at


def _next_item(text: str, at: int, close: str) -> tuple[bool, int]:
    """After a member or an element: (True, the index after `close`) at the end, else (False, the
    index where the next one starts)."""
    at = _skip_space(text, at)
    if text.startswith(close, at):
        return True, at + 1
    if not text.startswith(",", at):
        raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
    return False, _skip_space(text, at + 1)


def _skip_space(text: str, at: int) -> int:
    """The index of the first character at or after `at` that is not whitespace."""
    space = _SPACE.match(text, at)
    return space.end() if space else at
