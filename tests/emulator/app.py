"""`GatewayEmulator`: the pure request -> response logic of the emulated AI gateway.

Pipeline per request (mirrors the gateway's filter chain):
  record -> /_files/ downloads (no auth, like a pre-signed OSS URL) -> consumer auth
  -> the consumer's own fault (`fault_consumer`) -> ai-cache (the `ai-cache` segment, cache.py)
  -> /_fault/ faults -> route by path suffix (any base path) -> late faults.
Call it directly (`emu(Request(...))` or `emu.handle(...)`), wrap it for httpx with
`emu.mock_transport()`, or put it on a loopback socket with `serve(emu)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import audio, chat, embeddings, rerank
from .auth import Authenticator, AuthMode, Consumer
from .cache import AiCache
from .context import Context, Settings
from .denial import Denial
from .faults import FAULT_HELP, Faults, UnknownFaultError, parse_faults
from .recorded import RecordedAnswers, recorded_name
from .responses import dumps, json_response, text_response
from .wire import ABORT, Headers, Pause, ReceivedRequest, Request, Response

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_MODELS", "ROUTES", "GatewayEmulator", "Route"]

DEFAULT_MODELS = ("qwen-max", "qwen-plus", "qwen-turbo", "qwq-plus", "text-embedding-v3", "gte-rerank-v2", "qwen-tts")
_FILE_PATH = re.compile(r"/_files/([0-9a-f]{8,64})\.wav$")
_SILENCE_PATH = re.compile(r"/_files/silence-(\d+)\.wav$")  # faults.py, audio-MIB


@dataclass(frozen=True, slots=True)
class Route:
    suffix: str
    method: str
    handler: Callable[[Context], Response]


def _list_models(ctx: Context) -> Response:
    if ctx.settings.models is None:
        return _no_route(ctx.request.path)
    data = [{"id": m, "object": "model", "created": ctx.created, "owned_by": "system"} for m in ctx.settings.models]
    return json_response({"object": "list", "data": data})


def _no_route(path: str) -> Response:
    # Envoy's "no route" answer is an empty 404; the header helps whoever debugs a test.
    return Response(404, [("Content-Type", "text/plain"), ("X-Emulator-Error", f"no route for {path}")])


# Matched in order against the end of the raw path, like ai-proxy's pathSuffixToApiName.
ROUTES: tuple[Route, ...] = (
    Route("/api/v1/services/embeddings/text-embedding/text-embedding", "POST", embeddings.dashscope_embeddings),
    Route("/api/v1/services/rerank/text-rerank/text-rerank", "POST", rerank.dashscope_native_rerank),
    Route("/api/v1/services/aigc/multimodal-generation/generation", "POST", audio.dashscope_tts),
    Route("/v1/chat/completions", "POST", chat.chat_completions),
    Route("/v1/completions", "POST", chat.completions),
    Route("/v1/embeddings", "POST", embeddings.openai_embeddings),
    Route("/v1/reranks", "POST", rerank.dashscope_compatible_rerank),
    Route("/v1/rerank", "POST", rerank.cohere_rerank),
    Route("/v2/rerank", "POST", rerank.cohere_rerank),
    Route("/v1/audio/transcriptions", "POST", audio.transcription),
    Route("/v1/audio/translations", "POST", audio.translation),
    Route("/v1/audio/speech", "POST", audio.speech),
    Route("/v1/models", "GET", _list_models),
)


class GatewayEmulator:
    """A deterministic stand-in for Alibaba Cloud AI Gateway's client-facing wire formats.

    consumers: no consumers means consumer auth is off. With consumers, each request must
      carry one consumer's credential (API key, JWT or HMAC; see auth.py).
    auth: "auto" (every scheme some consumer has), or restrict to one scheme, or "none".
    strict_fields: reject unknown top-level chat fields with 400, like a strict backend;
      `allowed_extra_fields` lists the non-OpenAI fields still accepted.
    max_batch: most inputs per embeddings request (DashScope's limit is 10).
    models: what `GET /v1/models` lists; None (the default) leaves that route unconfigured, so it
      answers 404 like a gateway without a model-list route. `serve_models` changes it.
    hmac_date_offset: allowed Date / X-Ca-Timestamp skew in seconds; None turns the check
      off (the Higress default). The default 900 s catches bad Date formats.
    clock: time source for JWT/HMAC time checks and "created" fields.
    created: a fixed value for every "created" field (stable cassettes); None uses the clock.
    recorded_dir: a folder of answers served as they are by `/_recorded/<file>/` (recorded.py).
    """

    def __init__(
        self,
        consumers: Sequence[Consumer] = (),
        *,
        auth: AuthMode = "auto",
        strict_fields: bool = False,
        allowed_extra_fields: Iterable[str] = chat.DEFAULT_EXTRA_FIELDS,
        max_batch: int = 10,
        embedding_dim: int = 8,
        hmac_date_offset: float | None = 900.0,
        jwt_clock_skew: float = 60.0,
        models: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
        created: int | None = None,
        recorded_dir: Path | None = None,
    ) -> None:
        self.consumers: tuple[Consumer, ...] = tuple(consumers)
        self.settings = Settings(
            strict_fields=strict_fields,
            allowed_extra_fields=frozenset(allowed_extra_fields),
            max_batch=max_batch,
            embedding_dim=embedding_dim,
            models=None if models is None else tuple(models),
        )
        self._initial_settings = self.settings
        self._auth = Authenticator(
            self.consumers,
            mode="none" if auth == "none" else auth,
            hmac_date_offset=hmac_date_offset,
            jwt_clock_skew=jwt_clock_skew,
            clock=clock,
        )
        self._clock = clock
        self._created = created
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._path_attempts: Counter[str] = Counter()
        self._files: dict[str, bytes] = {}
        self._recorded = RecordedAnswers(recorded_dir) if recorded_dir is not None else None
        self._consumer_faults: dict[str, str] = {}
        self._cache = AiCache()
        self.received: list[ReceivedRequest] = []

    # -- inspection helpers for tests -------------------------------------------------

    def clear(self) -> None:
        """Forget received requests, per-path attempt counters, id sequences, the ai-cache, consumer
        faults and a changed model list."""
        with self._lock:
            self.received.clear()
            self._path_attempts.clear()
            self._seq = itertools.count(1)
            self._consumer_faults.clear()
            self.settings = self._initial_settings
        self._cache.clear()

    def fault_consumer(self, consumer: str, fault: str | None) -> None:
        """Answer every request of `consumer` with `fault` (a fault name, e.g. "status-429" for a
        token quota spent, "status-403" for a disabled consumer) until cleared with None; other
        consumers are served normally, so a client holding several keys can be seen moving on."""
        if fault is not None:
            Faults().plus(fault)  # an unknown name fails here, not on the next request
        with self._lock:
            if fault is None:
                self._consumer_faults.pop(consumer, None)
            else:
                self._consumer_faults[consumer] = fault

    def serve_models(self, models: Sequence[str] | None) -> None:
        """What `GET /v1/models` lists from now on; None: the route is absent (404)."""
        with self._lock:
            self.settings = dataclasses.replace(self.settings, models=None if models is None else tuple(models))

    def hits(self, path_contains: str = "") -> int:
        """How many requests arrived whose raw path contains `path_contains` (retries count)."""
        with self._lock:
            return sum(1 for r in self.received if path_contains in r.path)

    @property
    def last(self) -> ReceivedRequest:
        with self._lock:
            return self.received[-1]

    @staticmethod
    def fault_help() -> str:
        return FAULT_HELP

    # -- the handler -------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        record = ReceivedRequest(request.method, request.path, request.query, request.headers, request.body)
        with self._lock:
            self.received.append(record)
            self._path_attempts[request.path] += 1
            attempt = self._path_attempts[request.path]
        response = self._respond(request, record, attempt)
        record.status = None if response.drop else response.status
        return response

    def handle(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        json_body: Any = None,
        base_url: str = "http://127.0.0.1",
    ) -> Response:
        """Convenience for calling the app without a server (tests of the emulator itself)."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if json_body is not None:
            body = dumps(json_body).encode("utf-8")
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.append(("Content-Type", "application/json"))
        return self(Request(method, target, Headers(pairs), body, base_url))

    def _next_seq(self) -> int:
        with self._lock:
            return next(self._seq)

    def _store_file(self, data: bytes) -> str:
        file_id = hashlib.sha256(data).hexdigest()[:16]
        with self._lock:
            self._files[file_id] = data
        return file_id

    def _respond(self, request: Request, record: ReceivedRequest, attempt: int) -> Response:
        if request.method == "GET" and (m := _FILE_PATH.search(request.path)):
            with self._lock:
                data = self._files.get(m.group(1))
            if data is None:
                return text_response("file not found", 404)
            return Response(200, [("Content-Type", "audio/wav")], data)
        if request.method == "GET" and (m := _SILENCE_PATH.search(request.path)):
            size, body = audio.silent_wav(int(m.group(1)))
            return Response(200, [("Content-Type", "audio/wav")], body, content_length=size)

        outcome = self._auth.authenticate(request)
        if isinstance(outcome, Denial):
            return outcome.to_response()
        record.consumer = outcome

        try:
            faults, _ = parse_faults(request.path)
        except UnknownFaultError as exc:
            return text_response(f"{exc}\n\n{FAULT_HELP}", 400)
        faults = faults.for_attempt(attempt)
        with self._lock:
            consumer_fault = self._consumer_faults.get(outcome) if outcome else None
            settings = self.settings
        if consumer_fault is not None:
            faults = faults.plus(consumer_fault)
        ctx = Context(
            request=request,
            faults=faults,
            settings=settings,
            created=self._created if self._created is not None else int(self._clock()),
            next_seq=self._next_seq,
            store_file=self._store_file,
        )
        cache_key = None
        if faults.ai_cache and request.path.endswith("/v1/chat/completions"):
            hit, cache_key = self._cache.lookup(request, ctx.json_object())
            if hit is not None:
                return hit
        if (early := faults.early_response(ctx.request_id)) is not None:
            return faults.past_bounds(early)

        recorded = recorded_name(request.path)
        if recorded is None:
            response = self._route(ctx)
        elif self._recorded is None:
            response = text_response(f"no recorded answer {recorded!r}: the emulator has no recorded_dir", 404)
        else:
            response = self._recorded.respond(recorded, faults)
        response = faults.shape_body(response)
        response.delay += faults.stall
        response = faults.past_bounds(response)
        return response if cache_key is None else self._cache.store(cache_key, response)

    def _route(self, ctx: Context) -> Response:
        path = ctx.request.path
        route = next((r for r in ROUTES if path.endswith(r.suffix)), None)
        if route is None:
            return _no_route(path)
        if ctx.request.method != route.method:
            return text_response(
                f"method {ctx.request.method} not allowed on {route.suffix}", 405, [("Allow", route.method)]
            )
        try:
            return route.handler(ctx)
        except Exception:  # noqa: BLE001 - an emulator bug must surface in the test, not hang the client
            return text_response("emulator internal error:\n" + traceback.format_exc(), 500)

    # -- httpx adapter -----------------------------------------------------------------

    def mock_transport(self) -> httpx.MockTransport:
        """An httpx.MockTransport that runs this emulator in-process (no sockets).

        Pauses sleep for real; `close` and mid-stream resets raise httpx.RemoteProtocolError.
        """
        import httpx

        def handler(req: httpx.Request) -> httpx.Response:
            target = req.url.raw_path.decode("ascii")
            headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers.raw)
            base_url = f"{req.url.scheme}://{req.url.netloc.decode('ascii')}"
            response = self(Request(req.method, target, headers, req.read(), base_url))
            if response.delay:
                time.sleep(response.delay)
            if response.drop:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=req)
            if not response.streamed:
                return httpx.Response(response.status, headers=response.headers, content=response.read())

            def chunks() -> Iterator[bytes]:
                assert not isinstance(response.body, bytes | bytearray)
                for item in response.body:
                    if isinstance(item, Pause):
                        time.sleep(item.seconds)
                    elif item is ABORT:
                        raise httpx.RemoteProtocolError("peer closed connection (emulated reset)", request=req)
                    elif isinstance(item, bytes):
                        yield item

            return httpx.Response(response.status, headers=response.headers, content=chunks())

        return httpx.MockTransport(handler)
