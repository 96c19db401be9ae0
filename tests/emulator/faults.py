"""Fault injection selected by `/_fault/<name>/` path segments placed before the route suffix.

A test only changes the endpoint URL, e.g. base + "/_fault/status-429/v1/chat/completions".
Several segments combine ("/_fault/chunks-500/_fault/slow-chunks-2/v1/chat/completions").
Faults act after authentication, like an upstream or a later gateway plugin would.

Names (see `FAULT_HELP`):
  status-NNN              gateway/upstream error with a realistic body (NNN in STATUS_CODES)
  status-429-retry-after  429 with Retry-After: 3;  status-429-bare: 429 with no hint
  dserror-NNN             DashScope envelope {"code","message","request_id"} with status NNN
  html-502                502 with an HTML error page (a load balancer in front)
  badjson                 200 application/json, truncated
  badsse                  stream with a malformed data: line after 2 events
  ssecut                  stream ends cleanly after 2 events (no finish, no usage, no [DONE])
  ssereset                stream: connection dropped after 2 events (incomplete chunked body)
  sseerror                stream: `data: {"error":{...}}` after 2 events, then the end
  stall-S                 nothing for S seconds (float), then the normal answer
  stall-midstream-S       2 events (or half the body), S seconds of silence, then the rest
  close                   close the connection without any response
  chunks-N                reply of exactly N words; a stream has exactly N content chunks
  slow-chunks-MS          MS milliseconds between stream events
  slow-chunks-MIN-MAX     between MIN and MAX milliseconds between stream events (the same
                          pseudo-random sequence for every stream, so runs compare)
  fail-first-N-<fault>    <fault> for the first N requests on this exact path, then normal
Hostile answers (hostile.py):
  big-N                   the answer's text is N bytes: chat content (in one stream event), each
                          tool call's arguments when tools are offered, a transcript
  calls-K                 with big-N and tools: K tool calls
  dims-N                  embedding vectors of N dimensions whatever was asked for
  flood-S                 chat stream: content events as fast as the client reads, for S seconds
Shape options (not faults, but selected the same way):
  ai-cache                the route has Higress ai-cache in front (cache.py): a repeated last
                          message is answered from the cache unless x-higress-skip-ai-cache: on
  cached-N                chat usage reports N of the prompt tokens as cached
                          (prompt_tokens_details.cached_tokens, OpenAI and DashScope)
  deepseek-cached-N       the same in DeepSeek's own fields only (prompt_cache_hit_tokens and
                          prompt_cache_miss_tokens)
  minimal-shapes          chat answers in the emulator's first minimal shape instead of the
                          DashScope compatible-mode shape (replies.py)
  guard-deny-text         content-security blocks carry Higress' older plain deny text instead of
                          its current DenyResponseBody JSON (guard.py)
Answers past the plugin's read bounds (bounds.py; bodies generated as they are sent):
  gzip-bomb-MIB           the answer (an error too) gzip-encoded, followed by MIB MiB of spaces
  bloat-MIB               the answer followed by MIB MiB of spaces, not compressed
  sse-line-MIB            a stream whose first line is a data: line of MIB MiB, no newline for that long
  drip-S                  the answer one byte at a time, S seconds apart
  audio-MIB               qwen-tts: the audio at the answer's URL is a WAV of MIB MiB (silence, all
                          of them legitimate audio, each inside the per-piece bound)
  endless                 a stream that repeats its content events for ever (never [DONE])
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from . import bounds
from .denial import Denial
from .responses import JSON, dashscope_error, openai_error, text_response
from .wire import ABORT, BodyItem, Pause, Response

__all__ = ["FAULT_HELP", "STATUS_CODES", "Faults", "UnknownFaultError", "parse_faults"]

FAULT_HELP = __doc__ or ""
STATUS_CODES = frozenset({400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504})
_AFTER_EVENTS = 2  # stream faults strike after this many events

SSE_ERROR_EVENT = (
    b'data: {"error":{"message":"Internal server error (emulated mid-stream failure)",'
    b'"type":"server_error","param":null,"code":"internal_error"}}\n\n'
)
BAD_SSE_EVENT = b'data: {"id":"chatcmpl-broken","object":"chat.completion.chu\n\n'

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# Plain-text bodies of Higress plugins (alibaba/higress `plugins/wasm-go/extensions/ai-token-ratelimit`,
# `cluster-key-rate-limit`, `ai-quota`, `ai-proxy/util/http.go`) and Envoy local replies.
_PLAIN_BODIES: dict[int, str] = {
    408: "request timeout",
    413: "Payload Too Large",
    429: "Too many requests",
    500: "failed to process request: emulated ai-proxy internal error",
    502: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    503: "no healthy upstream",
    504: "upstream request timeout",
}
_KEY_REALM = (("WWW-Authenticate", "Key realm=MSE Gateway"),)
_DASHSCOPE_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "The request parameter is invalid (emulated)."),
    401: ("InvalidApiKey", "Invalid API-key provided."),
    403: ("AccessDenied", "Access denied."),
    404: ("ModelNotFound", "Model not exist."),
    408: ("RequestTimeOut", "Request timed out, please try again later."),
    413: ("InvalidParameter", "Request body is too large."),
    422: ("InvalidParameter", "Unprocessable request (emulated)."),
    429: ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    500: ("InternalError", "An internal error has occured, please try again later or contact service support."),
    502: ("InternalError", "Bad gateway (emulated)."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable, please try again later."),
    504: ("RequestTimeOut", "Upstream request timed out (emulated)."),
}


class UnknownFaultError(ValueError):
    """A /_fault/<name>/ segment the emulator does not know."""


@dataclass(frozen=True, slots=True)
class Faults:
    status: int | None = None
    status_variant: str = ""  # "", "retry-after" or "bare" (429 only)
    dashscope_status: int | None = None
    html_502: bool = False
    badjson: bool = False
    badsse: bool = False
    ssecut: bool = False
    ssereset: bool = False
    sseerror: bool = False
    stall: float = 0.0
    stall_midstream: float | None = None
    close: bool = False
    chunks: int | None = None
    slow_chunks_ms: float = 0.0
    slow_chunks_max_ms: float = 0.0  # > slow_chunks_ms: gaps drawn between the two
    fail_first: int = 0
    fail_with: tuple[str, ...] = ()  # fault names applied while attempt <= fail_first
    minimal_shapes: bool = False
    guard_deny_text: bool = False
    big: int | None = None
    calls: int = 1
    dims: int | None = None
    flood: float | None = None
    ai_cache: bool = False
    cached_tokens: int | None = None
    deepseek_cached_tokens: int | None = None

    def plus(self, name: str) -> Faults:
        """These faults and the one `name` names (UnknownFaultError for a name the emulator lacks)."""
        return _apply(self, name)

    gzip_bomb_mib: float = 0.0
    bloat_mib: float = 0.0
    sse_line_mib: float = 0.0
    drip_seconds: float = 0.0
    endless: bool = False
    audio_mib: int = 0

    def for_attempt(self, attempt: int) -> Faults:
        """The faults in force for the attempt-th request (1-based) on this path."""
        if not self.fail_first:
            return self
        base = dataclasses.replace(self, fail_first=0, fail_with=())
        return _parse_names(self.fail_with, base) if attempt <= self.fail_first else base

    def early_response(self, request_id: Callable[[], str]) -> Response | None:
        """Faults answered before any route logic runs (the request never reaches a model)."""
        if self.close:
            return Response(drop=True, delay=self.stall)
        response = None
        if self.status is not None:
            response = _status_response(self.status, self.status_variant)
        elif self.dashscope_status is not None:
            code, message = _DASHSCOPE_CODES[self.dashscope_status]
            response = dashscope_error(self.dashscope_status, code, message, request_id())
        elif self.html_502:
            response = text_response(HTML_502, 502, ctype="text/html")
        if response is not None:
            response.delay = self.stall
        return response

    def shape_stream(self, events: Sequence[bytes]) -> Iterator[BodyItem]:
        """Apply the stream faults to a complete list of SSE events."""
        head, tail = list(events[:_AFTER_EVENTS]), list(events[_AFTER_EVENTS:])
        items: list[BodyItem] = list(head)
        if self.endless:
            repeated = [event for event in tail if b'"content"' in event] or head
            endless = itertools.chain(head, itertools.cycle(repeated))
            if not self.slow_chunks_ms:
                return endless
            return _with_gaps(endless, lambda: Pause(self.slow_chunks_ms / 1000.0))
        if self.ssereset:
            items.append(ABORT)
        elif self.sseerror:
            items.append(SSE_ERROR_EVENT)
        elif not self.ssecut:
            if self.badsse:
                items.append(BAD_SSE_EVENT)
            if self.stall_midstream is not None:
                items.append(Pause(self.stall_midstream))
            items.extend(tail)
        if not self.slow_chunks_ms:
            return iter(items)
        low, high = self.slow_chunks_ms, max(self.slow_chunks_ms, self.slow_chunks_max_ms)
        draw = random.Random(len(items)).uniform
        return _with_gaps(items, lambda: Pause(draw(low, high) / 1000.0))

    def shape_body(self, response: Response) -> Response:
        """Late faults on a finished response: badjson, stall-midstream on a plain body."""
        if self.badjson:
            return _truncated_json(response)
        if self.stall_midstream is not None and not response.streamed:
            body = response.read()
            half = len(body) // 2
            response.body = [body[:half], Pause(self.stall_midstream), body[half:]]
            response.content_length = len(body)
        return response

    def past_bounds(self, response: Response) -> Response:
        """The answers past the read bounds (bounds.py) in place of a finished response, error answers too."""
        if self.sse_line_mib and response.streamed:
            response.body = bounds.endless_line(self.sse_line_mib)
        if self.gzip_bomb_mib:
            response.body = bounds.gzip_bomb(response.read(), self.gzip_bomb_mib)
            response.headers = [*response.headers, ("Content-Encoding", "gzip")]
            response.content_length = None
        elif self.bloat_mib:
            response.body = bounds.bloated(response.read(), self.bloat_mib)
            response.content_length = None
        if self.drip_seconds:
            items = [response.body] if isinstance(response.body, bytes | bytearray) else response.body
            response.body = bounds.dripping(items, self.drip_seconds)
            response.content_length = None
        return response


def _with_gaps(items: Iterable[BodyItem], gap: Callable[[], Pause]) -> Iterator[BodyItem]:
    for index, item in enumerate(items):
        if index:
            yield gap()
        yield item


def _status_response(status: int, variant: str) -> Response:
    if status in (401, 403):
        message = (
            "Request denied by Key Auth check. No Key Authentication information found."
            if status == 401
            else "Request denied by Key Auth check. Unauthorized consumer."
        )
        return Denial(status, message, _KEY_REALM).to_response()
    if status == 400:
        return openai_error(
            400, "The request is invalid (emulated fault).", "invalid_request_error", "invalid_parameter_error"
        )
    if status == 404:
        return openai_error(
            404, "The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"
        )
    if status == 422:
        return openai_error(
            422, "Unprocessable entity (emulated fault).", "invalid_request_error", "invalid_parameter_error"
        )
    headers: list[tuple[str, str]] = []
    if status == 429 and variant == "retry-after":
        headers.append(("Retry-After", "3"))
    elif status == 429 and variant != "bare":
        headers.append(("X-TokenRateLimit-Reset", "7"))  # ai-token-ratelimit: seconds to reset
    return text_response(_PLAIN_BODIES[status], status, headers)


def _truncated_json(response: Response) -> Response:
    if response.streamed:
        first = next((item for item in response.read().split(b"\n\n") if item.startswith(b"data:")), b"data: {}")
        body = first.removeprefix(b"data:").strip()
    else:
        body = response.read() or b"{}"
    return Response(200, [("Content-Type", JSON)], body[: max(1, len(body) // 2)], delay=response.delay)


_NUMBER = r"(\d+(?:\.\d+)?)"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"status-(\d{3})"), "status"),
    (re.compile(r"status-429-(retry-after|bare)"), "status_variant"),
    (re.compile(r"dserror-(\d{3})"), "dashscope_status"),
    (re.compile(rf"stall-midstream-{_NUMBER}"), "stall_midstream"),
    (re.compile(rf"stall-{_NUMBER}"), "stall"),
    (re.compile(r"chunks-(\d+)"), "chunks"),
    (re.compile(r"cached-(\d+)"), "cached_tokens"),
    (re.compile(r"deepseek-cached-(\d+)"), "deepseek_cached_tokens"),
    (re.compile(rf"slow-chunks-{_NUMBER}"), "slow_chunks_ms"),
    (re.compile(r"big-(\d+)"), "big"),
    (re.compile(r"calls-(\d+)"), "calls"),
    (re.compile(r"dims-(\d+)"), "dims"),
    (re.compile(rf"flood-{_NUMBER}"), "flood"),
    (re.compile(rf"gzip-bomb-{_NUMBER}"), "gzip_bomb_mib"),
    (re.compile(rf"bloat-{_NUMBER}"), "bloat_mib"),
    (re.compile(rf"sse-line-{_NUMBER}"), "sse_line_mib"),
    (re.compile(rf"drip-{_NUMBER}"), "drip_seconds"),
    (re.compile(r"audio-(\d+)"), "audio_mib"),
]
_WHOLE_NUMBERS = frozenset(
    {
        "status",
        "dashscope_status",
        "chunks",
        "big",
        "calls",
        "dims",
        "cached_tokens",
        "deepseek_cached_tokens",
        "audio_mib",
    }
)
_FLAGS = {"html-502": "html_502", "badjson": "badjson", "badsse": "badsse", "ssecut": "ssecut",
          "ssereset": "ssereset", "sseerror": "sseerror", "close": "close",
          "minimal-shapes": "minimal_shapes", "guard-deny-text": "guard_deny_text", "ai-cache": "ai_cache",
          "endless": "endless"}  # fmt: skip
_FAIL_FIRST = re.compile(r"fail-first-(\d+)-(.+)")
_SLOW_RANGE = re.compile(rf"slow-chunks-{_NUMBER}-{_NUMBER}")


def _apply(faults: Faults, name: str) -> Faults:
    if name in _FLAGS:
        return dataclasses.replace(faults, **{_FLAGS[name]: True})
    if m := _FAIL_FIRST.fullmatch(name):
        _apply(Faults(), m.group(2))  # validate the inner fault now, not on first use
        return dataclasses.replace(faults, fail_first=int(m.group(1)), fail_with=(*faults.fail_with, m.group(2)))
    if m := _SLOW_RANGE.fullmatch(name):
        return dataclasses.replace(faults, slow_chunks_ms=float(m.group(1)), slow_chunks_max_ms=float(m.group(2)))
    for pattern, field_name in _PATTERNS:
        if m := pattern.fullmatch(name):
            value = m.group(1)
            if field_name == "status_variant":
                return dataclasses.replace(faults, status=429, status_variant=value)
            if field_name in ("status", "dashscope_status") and int(value) not in STATUS_CODES:
                raise UnknownFaultError(f"unsupported status in fault {name!r}; use one of {sorted(STATUS_CODES)}")
            number: int | float = int(value) if field_name in _WHOLE_NUMBERS else float(value)
            return dataclasses.replace(faults, **{field_name: number})
    raise UnknownFaultError(f"unknown emulator fault {name!r}")


def _parse_names(names: Sequence[str], base: Faults | None = None) -> Faults:
    faults = base or Faults()
    for name in names:
        faults = _apply(faults, name)
    return faults


def parse_faults(path: str) -> tuple[Faults, str]:
    """Faults named in the path, and the path with the /_fault/<name> segments removed."""
    segments = path.split("/")
    names: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(segments):
        if segments[i] == "_fault" and i + 1 < len(segments):
            names.append(segments[i + 1])
            i += 2
            continue
        kept.append(segments[i])
        i += 1
    return _parse_names(names), "/".join(kept)
