"""A JSON answer parsed in pieces (adapters/gateway/json_pieces.py) is exactly what json.loads makes
of it: the same value for every JSON text, an error for every text json.loads refuses, and the hub
gets a turn between the elements of a top-level object's arrays."""

from __future__ import annotations

import json
import math

import pytest

from adapters.gateway import json_pieces
from adapters.gateway.json_pieces import loads_in_pieces

VALID = [
    "{}",
    ' { "data" : [ ] , "b":[1, 2.5e3 ,-0.0, {"x":[1]}, [2, [3]]], "data": "repeated key", "c": {"d": [1]} } \n',
    '{"big": 123456789012345678901234567890, "deep": [[[[]]]], "text": "a\\"b\\\\c \\u5927\\ud800 字"}',
    '{"t": [true, false, null], "s": [""], "o": [{}]}',
    "[1, 2]",
    '"a bare string"',
    "  3  ",
]
INVALID = [
    "",
    "{",
    '{"a"',
    '{"a":',
    '{"a":[',
    '{"a":[1,',
    '{"a":[1 2]}',
    '{"a":1,}',
    '{"a":[1,]}',
    "{a:1}",
    '{"a":1}x',
    '{"a":1} {}',
    '{"a":1 "b":2}',
    '{"a":[1]]',
    "\ufeff{}",
]


@pytest.mark.parametrize("text", VALID)
def test_every_json_text_reads_as_json_loads_reads_it(text: str) -> None:
    assert loads_in_pieces(text) == json.loads(text)
    assert loads_in_pieces(text.encode()) == json.loads(text.encode())
    assert loads_in_pieces(text.encode("utf-16")) == json.loads(text.encode("utf-16"))


def test_non_finite_numbers_read_as_json_loads_reads_them() -> None:
    value = loads_in_pieces('{"v": [NaN, Infinity, -Infinity]}')
    assert math.isnan(value["v"][0]) and value["v"][1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("text", INVALID)
def test_what_json_loads_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        loads_in_pieces(text)


def test_the_hub_gets_a_turn_between_the_elements_of_a_top_level_array(monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[None] = []
    monkeypatch.setattr(json_pieces, "give_way", lambda: turns.append(None))
    vectors = [[0.5] * 8 for _ in range(50)]
    answer = {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)], "usage": {"prompt_tokens": 3}}
    assert loads_in_pieces(json.dumps(answer)) == answer
    assert len(turns) >= len(vectors)
