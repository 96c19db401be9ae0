"""The SSE reader against the event-stream format (WHATWG HTML, "Server-sent events"), byte for byte.

Each case builds a body, feeds it to adapters/gateway/sse.py in every way the network can cut it,
and checks the events and the way the stream ended. Recorded real streams run through the same
reader in tests/test_real_traces.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import httpx
import pytest
from dify_plugin.errors.model import InvokeServerUnavailableError

from adapters.gateway.sse import EventStream, LineTooLongError, iter_lines

_REQUEST = httpx.Request("POST", "http://gw/v1/chat/completions")


def _response(body: bytes, chunk_size: int | None = None) -> httpx.Response:
    pieces = [body] if chunk_size is None else [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(pieces), request=_REQUEST)


def _read(body: bytes, chunk_size: int | None = None) -> tuple[list[dict], bool]:
    stream = EventStream(_response(body, chunk_size), "/v1/chat/completions")
    return list(stream), stream.done


def _every_cut(text: str) -> list[list[str]]:
    """The text as two chunks, cut at every position, plus one character per chunk."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_lines_end_at_lf_crlf_or_cr_however_the_reads_cut_them(ending: str) -> None:
    text = ending.join(["data: a", "", "data: b", "", ""])
    for chunks in _every_cut(text):
        assert list(iter_lines(chunks)) == ["data: a", "", "data: b", ""], chunks


def test_a_cr_then_a_crlf_are_two_line_ends() -> None:
    for chunks in _every_cut("a\r\r\nb\n"):
        assert list(iter_lines(chunks)) == ["a", "", "b"], chunks


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_unicode_line_separators_inside_json_are_content(separator: str) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": f"one{separator}two"}}]}
    body = f"data: {json.dumps(chunk, ensure_ascii=False)}\n\ndata: [DONE]\n\n".encode()
    for size in (None, 3):
        events, done = _read(body, size)
        assert events == [chunk] and done


def test_a_stream_with_a_byte_order_mark_reads_its_first_event() -> None:
    events, done = _read(b'\xef\xbb\xbfdata: {"n": 1}\n\ndata: [DONE]\n\n')
    assert events == [{"n": 1}] and done


def test_data_with_and_without_the_space_after_the_colon() -> None:
    events, done = _read(b'data:{"n": 1}\n\ndata: {"n": 2}\n\ndata:  {"n": 3}\n\ndata:[DONE]\n\n')
    assert events == [{"n": 1}, {"n": 2}, {"n": 3}] and done


def test_the_data_lines_of_one_event_are_joined_with_lf() -> None:
    pretty = json.dumps({"choices": [{"delta": {"content": "a\nb"}}]}, indent=2)
    body = "".join(f"data: {line}\n" for line in pretty.split("\n")) + "\n" + "data: [DONE]\n\n"
    for size in (None, 5):
        events, _ = _read(body.encode(), size)
        assert events == [json.loads(pretty)]


def test_comments_ids_retries_and_event_names_are_not_data() -> None:
    body = (
        b": OPENROUTER PROCESSING\n\n"
        b'id: 7\nretry: 3000\nevent: message\ndata: {"n": 1}\n\n'
        b":\n"
        b"data\n\n"  # an event whose data is empty: a keep-alive, nothing to deliver
        b'data: {"n": 2}\n: a comment inside an event\n\n'
        b"data: [DONE]\n\n"
    )
    events, done = _read(body)
    assert events == [{"n": 1}, {"n": 2}] and done


def test_an_error_event_is_an_error_whatever_its_data() -> None:
    body = (
        b'event: error\ndata: {"message": "Rate limit reached", "status_code": 429}\n\n'
        b'event: error\ndata: {"error": {"message": "wrapped already", "code": 400}}\n\n'
        b"event: error\ndata: upstream went away\n\n"
    )
    events, done = _read(body)
    assert events == [
        {"error": {"message": "Rate limit reached", "status_code": 429}},
        {"error": {"message": "wrapped already", "code": 400}},
        {"error": {"message": "upstream went away"}},
    ]
    assert not done


def test_done_as_the_last_bytes_without_a_newline_ends_the_stream() -> None:
    events, done = _read(b'data:{"n": 1}\n\ndata: [DONE]')
    assert events == [{"n": 1}] and done


def test_a_body_that_ends_without_done_says_so() -> None:
    events, done = _read(b'data: {"n": 1}\n\ndata: {"n": 2}')
    assert events == [{"n": 1}, {"n": 2}] and not done


def test_what_follows_done_is_read_to_the_end_of_the_body_not_parsed() -> None:
    response = _response(b'data: {"n": 1}\n\ndata: [DONE]\n\nnot an event\n\n')
    stream = EventStream(response, "/v1/chat/completions")
    assert list(stream) == [{"n": 1}] and stream.done
    assert response.is_stream_consumed


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"data: {not json}\n\n", "event 1 (10 characters) is not JSON"),
        (b'data: {"n": 1}\n\ndata: [1, 2]\n\n', "event 2 is a JSON list, not an object"),
    ],
)
def test_an_event_that_is_not_a_json_object_is_an_unusable_answer(body: bytes, problem: str) -> None:
    with pytest.raises(InvokeServerUnavailableError, match="unusable") as caught:
        _read(body)
    assert problem in str(caught.value)


def test_a_line_without_end_is_cut_as_soon_as_it_passes_the_limit() -> None:
    """Pieces of a line that never ends are not kept past the limit (a 400 MiB line once took the
    process to 1.4 GB): the reader stops within one piece of it, not at the end of the body."""
    read = 0

    def pieces() -> Iterator[str]:
        nonlocal read
        for _ in range(1000):
            read += 1
            yield "x" * 1024

    with pytest.raises(LineTooLongError):
        list(iter_lines(itertools.chain(["data: first\n"], pieces()), limit=10_000))
    assert read == 10
