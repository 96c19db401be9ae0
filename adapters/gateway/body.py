"""Reading an answer's body within its bounds (adapters/gateway/limits.py).

httpx's own reading (`response.read()`, `iter_bytes()`) inflates a gzip chunk in one call, so a
64 KiB chunk of a gzip bomb becomes 64 MiB before any size check could look at it. Here the raw
bytes are inflated at most `_PIECE` bytes at a time, so a size bound holds on decoded bytes.

The time bounds travel with the request (`bind`): the transport attaches the invocation's deadline
and the read timeout to every request it sends, and every read of its body, whoever does it (the
JSON reader, the SSE reader, a download), waits at most until the deadline and, once the body has
started, at most a read timeout for each PROGRESS_BYTES. Waiting is bounded with gevent timers:
the SDK runs every request on a gevent greenlet (dify_plugin patches the standard library), where a
timer interrupts a blocked socket read, and httpx then closes the connection.
"""

from __future__ import annotations

import codecs
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import gevent
import httpx
from dify_plugin.errors.model import InvokeBadRequestError, InvokeConnectionError

from adapters.cooperative import give_way
from adapters.gateway.json_pieces import loads_in_pieces
from adapters.gateway.limits import ANSWER_LIMITS, INVOCATION_TIMEOUT_VARIABLE, PROGRESS_BYTES, describe

_PIECE: Final = 64 * 1024  # the most decoded bytes one inflate step produces
_BOUNDS_KEY: Final = "aigw.read_bounds"  # httpcore ignores extensions it does not know
# What the client asks for (Accept-Encoding) and so the only encodings it reads.
ACCEPTED_ENCODINGS: Final = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class Deadline:
    """When one Dify invocation must be over, every request it makes included (time.monotonic())."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def keep[Result](self, request: httpx.Request, call: Callable[[], Result]) -> Result:
        """`call()` (which sends `request`), cancelled with the deadline's error when it runs past it."""
        return bounded(self.remaining(), call, lambda: self.error(request))

    def error(self, request: httpx.Request) -> InvokeConnectionError:
        return InvokeConnectionError(
            f"The request {_where(request)} was cancelled at the invocation's deadline of {self.seconds:g} s "
            f"({INVOCATION_TIMEOUT_VARIABLE}); the connection was closed."
        )


@dataclass(frozen=True, slots=True)
class Budget:
    """What one Dify invocation may spend on the gateway: time until its deadline, and for each
    answer the decoded size its model type's bound allows (adapters/gateway/limits.py)."""

    model_type: str
    deadline: Deadline
    # Called with the size of each decoded piece of an answer before it is kept, by whoever reads it
    # whole: where a TTS piece waits while its invocation holds too much audio (models/tts/held_audio.py).
    hold: Callable[[int], None] | None = None

    @property
    def answer_limit(self) -> int:
        return ANSWER_LIMITS[self.model_type]

    @property
    def answers(self) -> str:
        """How the bound is named in an error."""
        return f"{self.model_type} answers"


@dataclass(frozen=True, slots=True)
class ReadBounds:
    deadline: Deadline
    read_timeout: float
    read_limit: str  # how errors name the read timeout: "300 s (read timeout; set by ...)"


def bind(request: httpx.Request, deadline: Deadline, read_timeout: float, read_limit: str) -> None:
    """Attach the time bounds every read of this request's answer keeps to."""
    request.extensions[_BOUNDS_KEY] = ReadBounds(deadline, read_timeout, read_limit)


def _where(request: httpx.Request) -> str:
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode()}{url.path}"


def too_large(request: httpx.Request, limit: int, what: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(
        f"The answer to {_where(request)} is larger than the {describe(limit)} the plugin reads for {what} "
        "(counted after decompression); the connection was closed."
    )


def bounded[Result](wait: float, call: Callable[[], Result], on_expiry: Callable[[], Exception]) -> Result:
    """`call()`, interrupted after `wait` seconds with the error `on_expiry` gives."""
    if wait <= 0:
        raise on_expiry()
    timer = gevent.Timeout(wait)
    timer.start()
    try:
        return call()
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise on_expiry() from None
    finally:
        timer.close()


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The raw body, each read waiting no longer than the request's bounds allow."""
    raw = response.iter_raw()
    bounds = response.request.extensions.get(_BOUNDS_KEY)
    if not isinstance(bounds, ReadBounds):
        yield from raw
        return
    deadline, request, timeout = bounds.deadline, response.request, bounds.read_timeout
    started: float | None = None  # when the read timeout last restarted; None before the first byte
    moved = 0  # bytes since then
    last = 0.0  # when the last byte arrived
    why = "deadline"  # which bound the read in progress would pass first

    def cut() -> Exception:
        response.close()
        if why == "deadline":
            return deadline.error(request)
        if why == "silence":  # what the socket's own read timeout says
            return httpx.ReadTimeout("the read timeout passed", request=request)
        return InvokeConnectionError(
            f"The answer to {_where(request)} stalled: fewer than {PROGRESS_BYTES} bytes arrived in "
            f"{bounds.read_limit} once it had started; the connection was closed."
        )

    while True:
        until, why = deadline.at, "deadline"
        if started is not None:
            stall_at = started + timeout
            # Bytes that all came early in the window and then nothing are a silence: it ends at the
            # plain read timeout after the last byte. Bytes still trickling in are a stall.
            at, reason = (last + timeout, "silence") if stall_at - last >= timeout / 2 else (stall_at, "stall")
            if at < until:
                until, why = at, reason
        chunk = bounded(until - time.monotonic(), lambda: next(raw, None), cut)
        if chunk is None:
            return
        last = time.monotonic()
        moved += len(chunk)
        if started is None or moved >= PROGRESS_BYTES:
            started, moved = last, 0
        yield chunk


class _Inflater:
    """zlib inflation that never produces more than _PIECE bytes per step."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._zlib = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._zlib.eof:
            try:
                piece = self._zlib.decompress(data, _PIECE)
            except zlib.error:
                if self._started or self._wbits != zlib.MAX_WBITS:
                    raise
                # `deflate` is raw deflate on some servers, zlib-wrapped on others (as httpx reads it).
                self._wbits = -zlib.MAX_WBITS
                self._zlib = zlib.decompressobj(self._wbits)
                continue
            self._started = True
            data = self._zlib.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _PIECE:
                return  # a full piece may leave more output pending inside zlib: ask again


def _decoders(response: httpx.Response) -> list[_Inflater]:
    """The inflaters for the answer's Content-Encoding, outermost first; refuses what was not asked for."""
    names = [name.strip().lower() for name in response.headers.get("content-encoding", "").split(",")]
    decoders: list[_Inflater] = []
    for name in reversed([name for name in names if name and name != "identity"]):
        if name not in ("gzip", "deflate"):
            response.close()
            raise InvokeBadRequestError(
                f"The answer to {_where(response.request)} is encoded as {name[:40]!r}, which the plugin "
                f"does not read (it asks for {ACCEPTED_ENCODINGS})."
            )
        decoders.append(_Inflater(zlib.MAX_WBITS | 16 if name == "gzip" else zlib.MAX_WBITS))
    return decoders


def decoded_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The decoded body in pieces of at most _PIECE bytes (a stored piece may be larger), within the
    request's time bounds."""
    if response.is_stream_consumed:  # built with its content, or read already: httpx has decoded it
        yield response.content
        return
    stages = _decoders(response)

    def through(data: bytes, level: int) -> Iterator[bytes]:
        if level == len(stages):
            give_way()  # inflating or reading megabytes at network speed must not hold the hub
            yield data
            return
        for piece in stages[level].feed(data):
            yield from through(piece, level + 1)

    if not stages:
        for chunk in _raw_chunks(response):
            give_way()
            yield chunk
        return
    try:
        for chunk in _raw_chunks(response):
            yield from through(chunk, 0)
    except zlib.error as exc:
        response.close()
        raise httpx.DecodingError(f"the compressed body is not valid: {exc}", request=response.request) from exc


def decoded_text(response: httpx.Response) -> Iterator[str]:
    """The decoded body as UTF-8 text (undecodable bytes replaced, as httpx does)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for piece in decoded_chunks(response):
        if text := decoder.decode(piece):
            yield text
    if text := decoder.decode(b"", final=True):
        yield text


def read_limited(response: httpx.Response, limit: int, what: str, hold: Callable[[int], None] | None = None) -> bytes:
    """The whole decoded body, or InvokeBadRequestError once it passes `limit` bytes; closes the response.
    `hold(size)` is told of each piece before it is kept (and may wait there)."""
    parts: list[bytes] = []
    size = 0
    try:
        for piece in decoded_chunks(response):
            size += len(piece)
            if size > limit:
                raise too_large(response.request, limit, what)
            if hold is not None:
                hold(len(piece))
            parts.append(piece)
    finally:
        response.close()
    return b"".join(parts)


PIECEWISE_FROM: Final = 1024 * 1024  # bytes


class ReadAnswer(httpx.Response):
    """An answer read whole, whose `json()` parses it in pieces (adapters/gateway/json_pieces.py).

    LiteLLM's answer parsers and the plugin's own both call `json()`, so every JSON answer read
    whole gives the hub its turns while it is parsed. A body under PIECEWISE_FROM is parsed in one
    call: at ~15 ms per MiB of floats it cannot hold the hub near 100 ms, and a typical answer of a
    few KiB parses ~5x faster whole (6 against 27 us for a recorded DashScope chat answer).
    """

    def json(self, **kwargs: Any) -> Any:
        if kwargs or len(self.content) < PIECEWISE_FROM:
            return super().json(**kwargs)
        return loads_in_pieces(self.content)


def finished(
    response: httpx.Response, limit: int, what: str, hold: Callable[[int], None] | None = None
) -> httpx.Response:
    """The answer read whole within `limit`, as a closed response whose body is already decoded."""
    body = read_limited(response, limit, what, hold)
    give_way()  # joining megabytes of pieces is a stage of its own
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return ReadAnswer(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=dict(response.extensions),
    )
