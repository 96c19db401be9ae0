"""The one HTTP layer between LiteLLM's request/response translation and the gateway.

Each gateway configuration (adapters/gateway/config.py) gets one `GatewaySession`: a pooled
keep-alive httpx client whose auth object (adapters/gateway/auth/) sees the exact request that
goes on the wire, so JWT and HMAC slot in without the adapters knowing. Sessions are cached at
module level because Dify builds a new model object for every request. They are keyed on the
configuration they are built from (`config_key`), not on the whole credential set: models that
differ only in their model-form fields share one pool, and no secret is ever a cache key. A session
never changes after it is built but for the rests of its endpoints and keys (its `Rotation`, which
is locked), so concurrent requests share it safely, and requests with different gateway
credentials never share one.

Each attempt of a request goes to the endpoint and carries the key the rotation chooses
(adapters/gateway/failover.py): a configuration with several base URLs or several API keys moves
to the next one at once when one fails, within the retry budget, before anything reaches Dify.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeError, InvokeServerUnavailableError

from adapters.gateway.body import ACCEPTED_ENCODINGS, Budget, Deadline, bind, decoded_chunks, finished
from adapters.gateway.config import GatewayConfig, config_key
from adapters.gateway.endpoint import Endpoint
from adapters.gateway.errors import (
    error_from_response,
    error_from_transport,
    failure_kind,
    header_request_id,
    is_untrusted_certificate,
    redirect_error,
    reporting,
    request_id_of,
)
from adapters.gateway.failover import Part, Rotation, failed_part
from adapters.gateway.headers import mark
from adapters.gateway.limits import ERROR_BODY_LIMIT
from adapters.gateway.log import log_attempt
from adapters.gateway.proxy import Proxy, ProxyRouter
from adapters.gateway.redaction import Redactor
from adapters.gateway.retry import RETRY_STATUSES, reset_seconds
from adapters.gateway.tls import trust_store

# httpx logs every request URL at INFO, and the SDK forwards INFO logs to Dify; a URL can carry an
# API key in its query (consumers set up that way), so these loggers speak only on warnings.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_MAX_SESSIONS = 64


class Answer(StrEnum):
    """What the caller reads from a 2xx answer; the value is the `Accept` header the request carries.

    The transport sets it on every request, whatever the consumer's auth scheme (HMAC signs it as
    one of its fixed lines, and changes nothing), so one call sends the same headers under API
    key, JWT and HMAC consumers alike.
    """

    JSON = "application/json"
    EVENT_STREAM = "text/event-stream"
    # Speech synthesis: audio whose type follows the requested format and the server (audio/mpeg,
    # audio/wav, some send application/octet-stream), or on DashScope JSON pointing at the audio.
    # The bytes are checked, not their label, and naming types would only invite a 406 from a
    # server that negotiates strictly, so any type is accepted.
    SPEECH = "*/*"


# Failures where the gateway never saw the request (or dropped it before answering): safe to resend.
_NEVER_ANSWERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
# Failures that blame the endpoint: those, and a gateway that sent nothing before the read timeout.
_ENDPOINT_FAILURES = (*_NEVER_ANSWERED, httpx.ReadTimeout)


def _worth_resending(exc: httpx.HTTPError) -> bool:
    """The gateway never saw the request, and another attempt could succeed: a certificate that
    failed verification fails the same way every time."""
    return isinstance(exc, _NEVER_ANSWERED) and not is_untrusted_certificate(exc)


# The response extension holding (attempt number, monotonic start) of the attempt that answered.
_ATTEMPT = "aigw.attempt"
# (endpoint, key) every request of this context is sent with, without failover (`GatewaySession.pinned`).
_pinned: ContextVar[tuple[int, int] | None] = ContextVar("aigw_pinned_credentials", default=None)

Build = Callable[[Endpoint], httpx.Request]


@dataclass(frozen=True, slots=True)
class _Reading:
    """How one request's answer is read: by `deadline`, and unless it streams, at most `limit`
    decoded bytes (`what` names the bound in the error)."""

    deadline: Deadline
    limit: int
    what: str
    stream: bool
    hold: Callable[[int], None] | None = None  # Budget.hold


@dataclass(frozen=True, slots=True)
class GatewaySession:
    config: GatewayConfig
    client: httpx.Client
    auths: tuple[httpx.Auth, ...]  # one per credential set (API key), in the configuration's order
    rotation: Rotation

    def targets(self) -> list[tuple[int, int]]:
        """(endpoint, key) pairs that together use every endpoint and every key once: what a check of
        the credentials sends a call with."""
        endpoints, keys = self.rotation.sizes
        return [(e, 0) for e in range(endpoints)] + [(0, k) for k in range(1, keys)]

    def describe(self, endpoint: int, key: int) -> str:
        """Which endpoint and key a pair is, for an error ("" when there is one of each)."""
        endpoints, keys = self.rotation.sizes
        parts = [f"endpoint {endpoint + 1} of {endpoints} ({self.config.endpoints[endpoint].base_url}/v1)"]
        parts = parts if endpoints > 1 else []
        parts += [f"API key {key + 1} of {keys}"] if keys > 1 else []
        return ", ".join(parts)

    @contextmanager
    def pinned(self, endpoint: int, key: int) -> Iterator[None]:
        """Inside: every request goes to `endpoint` with `key`, no failover (a credentials check)."""
        token = _pinned.set((endpoint, key))
        try:
            yield
        finally:
            _pinned.reset(token)

    def redactor(self, request: httpx.Request | None = None) -> Redactor:
        """Masks this configuration's credential values, and those its auth put on `request`."""
        return Redactor(self.config.secrets(request))

    def reporting(self, request: httpx.Request | None = None) -> AbstractContextManager[None]:
        """Around work whose failure reaches Dify: raised as a mapped InvokeError with no credential
        value in its text (`redactor`) and no chain of causes (gateway/errors.py, `as_reported`)."""
        return reporting(lambda text: self.redactor(request)(text))

    def budget(self, model_type: str) -> Budget:
        """The budget of an invocation of a `model_type` model starting now; every request it makes
        is sent with it."""
        return Budget(model_type, Deadline.after(self.config.timeouts.invocation))

    def send(
        self,
        path: str,
        *,
        budget: Budget,
        method: str = "POST",
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        stream: bool = False,
        answer: Answer = Answer.JSON,
        extra_headers: Mapping[str, str] | None = None,
        own_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send to a route path; returns a 2xx response (open when `stream`) or raises a mapped InvokeError.

        A streamed request asks for `text/event-stream`; any other asks for what `answer` names, and
        its body is read here within the budget's bound for its model type. `extra_headers` are the
        invocation's own (checked by adapters/gateway/headers.py; they win over the configuration's),
        `own_headers` those the plugin adds (attribution, cache control). The request is built once
        for each endpoint an attempt goes to.
        """
        accept = Answer.EVENT_STREAM if stream else answer
        extra, own = dict(extra_headers or {}), dict(own_headers or {})
        added = [*(name for name, _ in self.config.extra_headers), *own, *extra]

        def build(endpoint: Endpoint) -> httpx.Request:
            request = self.client.build_request(
                method,
                endpoint.url(path),
                json=json,
                files=files,
                data=data,
                headers={"Accept": accept.value, **own, **extra},
            )
            if files:
                # Performance: httpx streams a multipart body part by part, one socket write for each
                # boundary, part header and value (14 writes for a transcription, ~3 ms over raw in
                # make bench); read into memory it leaves in one. The upload is in memory already.
                request.read()
            mark(request, added=added, secret=extra)
            return request

        return self._send(build, _Reading(budget.deadline, budget.answer_limit, budget.answers, stream, budget.hold))

    def send_request(
        self,
        request: httpx.Request,
        *,
        deadline: Deadline,
        limit: int,
        what: str,
        stream: bool = False,
        hold: Callable[[int], None] | None = None,
    ) -> httpx.Response:
        """Send a request whose URL is fixed (a file on the gateway's origin): retried and moved across
        keys like any other, never to another endpoint; read as `send` reads (`what` names the bound)."""
        reading = _Reading(deadline, limit, what, stream, hold)
        return self._send(lambda _endpoint: request, reading, fixed_url=True)

    def _send(self, build: Build, reading: _Reading, fixed_url: bool = False) -> httpx.Response:
        """Nothing waits past the deadline: not the answer, not a retry's pause, not a read of the body.
        Unless the answer streams, its body is read whole here, within its bound."""
        sent: list[httpx.Request] = []  # the last attempt's request: its JWT or signature is masked too
        with reporting(lambda text: self.redactor(sent[-1] if sent else None)(text)):
            response = self._send_with_retries(build, reading.deadline, fixed_url, sent)
            if reading.stream:
                return response
            try:
                return finished(response, reading.limit, reading.what, reading.hold)
            except InvokeError as exc:  # a bound passed while the body was read
                self.log_broken_answer(response, exc)
                raise
            except httpx.HTTPError as exc:
                self.log_broken_answer(response, exc)
                raise self.transport_error(response.request, exc) from exc

    def _send_with_retries(
        self, build: Build, deadline: Deadline, fixed_url: bool, sent: list[httpx.Request]
    ) -> httpx.Response:
        """Send with retries (gateway/retry.py) and failover (gateway/failover.py); each attempt runs
        the auth flow again, so is freshly signed."""
        timeouts = self.config.timeouts
        attempt = 1
        pinned = _pinned.get()
        built: dict[int, httpx.Request] = {}  # a retry to the same endpoint re-sends the same bytes
        while True:
            endpoint, key = pinned or self.rotation.choose()
            if endpoint not in built:
                built[endpoint] = build(self.config.endpoints[endpoint])
            request = built[endpoint]
            bind(request, deadline, timeouts.read, timeouts.read_limit())
            sent[:] = [request]
            failed: Part | None = None
            headers: httpx.Headers | None = None
            started = time.monotonic()
            try:
                send = functools.partial(self.client.send, request, auth=self.auths[key], stream=True)
                response = deadline.keep(request, send)
            except InvokeError:  # the deadline passed while the answer was awaited
                self._log("failure", request, "deadline", None, attempt, started)
                raise
            except httpx.HTTPError as exc:
                status, request_id = failure_kind(exc), None
                again = _worth_resending(exc)
                failed = Part.ENDPOINT if isinstance(exc, _ENDPOINT_FAILURES) else None
                error = self.transport_error(request, exc, attempt)
            else:
                if response.status_code < 300:
                    self.rotation.succeeded(endpoint, key)
                    break
                status = response.status_code
                if status < 400:
                    response.close()
                    request_id, again = header_request_id(response.headers), False
                    error = redirect_error(request, response, self.config.endpoints[endpoint].base_url)
                else:
                    body = _error_body(response)
                    request_id = request_id_of(response, body)
                    again, failed, headers = status in RETRY_STATUSES, failed_part(status), response.headers
                    error = error_from_response(
                        request.method, request.url, response, body, attempt, self._via(request)
                    )
            if failed is Part.ENDPOINT and fixed_url:
                failed = None  # a fixed URL has no other endpoint to go to
            if failed is not None and pinned is None and attempt <= self.config.retry.max_retries:
                index = endpoint if failed is Part.ENDPOINT else key
                if self.rotation.rest(failed, index, reset_seconds(headers) if headers is not None else None):
                    rested = f"{failed}_{index + 1}/{self.rotation.sizes[failed is Part.KEY]}"
                    self._log("failover", request, status, request_id, attempt, started, rested=rested)
                    attempt += 1
                    continue  # the next one at once
            delay = self.config.retry.delay(attempt - 1, headers) if again else None
            if delay is None or delay >= deadline.remaining():
                self._log("failure", request, status, request_id, attempt, started)
                raise error
            self._log("retry", request, status, request_id, attempt, started, retry_in_s=delay)
            time.sleep(delay)
            attempt += 1
        response.extensions[_ATTEMPT] = (attempt, started)
        return response

    def transport_error(self, request: httpx.Request, exc: Exception, attempts: int = 1) -> InvokeError:
        """The InvokeError for `request` failing without an answer, timeouts saying how long they were."""
        timeouts = self.config.timeouts
        return error_from_transport(
            request.method,
            request.url,
            exc,
            read_limit=timeouts.read_limit(),
            connect_limit=timeouts.connect_limit(),
            attempts=attempts,
            proxy=self._via(request),
        )

    def _via(self, request: httpx.Request) -> str | None:
        """The proxy `request` goes through, as messages name it ("host:port (VARIABLE)"), or None."""
        proxy = self.config.proxies.proxy_for(request.url)
        return None if proxy is None else proxy.describe()

    @contextmanager
    def reading(self, response: httpx.Response) -> Iterator[None]:
        """Around reading a 2xx answer: one that cannot be used is logged as the request's final failure."""
        try:
            yield
        except Exception as exc:
            self.log_broken_answer(response, exc)
            raise

    def log_broken_answer(self, response: httpx.Response, exc: Exception) -> None:
        """The final-failure log line for a 2xx answer that broke while it was read (a cut stream) or
        could not be used."""
        attempt, started = response.extensions.get(_ATTEMPT, (1, time.monotonic()))
        if isinstance(exc, httpx.HTTPError):
            problem = failure_kind(exc)
        else:
            problem = "unusable_answer" if isinstance(exc, InvokeServerUnavailableError) else type(exc).__name__
        request_id = header_request_id(response.headers)
        self._log("failure", response.request, response.status_code, request_id, attempt, started, problem=problem)

    def _log(
        self,
        event: str,
        request: httpx.Request,
        status: int | str,
        request_id: str | None,
        attempt: int,
        started: float,
        **fields: object,
    ) -> None:
        attempts = self.config.retry.max_retries + 1
        redact = self.redactor(request)
        if (proxy := self.config.proxies.proxy_for(request.url)) is not None:
            fields["proxy"] = proxy.shown
        log_attempt(event, request, status=status, request_id=request_id, attempt=attempt, attempts=attempts,
                    started=started, redact=redact, **fields)  # fmt: skip


def _error_body(response: httpx.Response) -> bytes:
    """At most ERROR_BODY_LIMIT decoded bytes of an error body: an HTML page, a runaway stream or a
    gzip bomb is not read whole."""
    chunks, size = [], 0
    try:
        for chunk in decoded_chunks(response):
            chunks.append(chunk)
            size += len(chunk)
            if size >= ERROR_BODY_LIMIT:
                break
    except (httpx.HTTPError, InvokeError):
        pass  # the status line already says what went wrong (an unreadable encoding, a deadline)
    finally:
        response.close()
    return b"".join(chunks)[:ERROR_BODY_LIMIT]


_sessions: OrderedDict[bytes, GatewaySession] = OrderedDict()
_sessions_lock = threading.Lock()


def open_session(config: GatewayConfig) -> GatewaySession:
    auths = config.auth.client_auths()
    context = trust_store(config.tls)

    def transport(proxy: Proxy | None) -> httpx.HTTPTransport:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=32)
        return httpx.HTTPTransport(verify=context, limits=limits, proxy=None if proxy is None else proxy.url)

    client = httpx.Client(
        auth=auths[0],
        # Only encodings adapters/gateway/body.py inflates within its bounds.
        headers={"Accept-Encoding": ACCEPTED_ENCODINGS, **dict(config.extra_headers)},
        timeout=config.timeouts.for_httpx(),
        follow_redirects=False,
        # The configuration already read the proxy and CA variables; httpx must not read them again
        # (it would miss NO_PROXY's CIDR entries and the system store).
        trust_env=False,
        transport=ProxyRouter(config.proxies, transport) if config.proxies.configured else transport(None),
    )
    return GatewaySession(config, client, auths, Rotation(len(config.endpoints), len(auths)))


def session_for(credentials: Mapping[str, Any]) -> GatewaySession:
    """The session for the gateway configuration of a credential set; built (and checked) on first use."""
    key = config_key(credentials)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None:
            _sessions.move_to_end(key)
            return session
    session = open_session(GatewayConfig.from_credentials(credentials))
    with _sessions_lock:
        # Evicted clients are not closed here: a request on another greenlet may still be using one.
        _sessions[key] = session
        while len(_sessions) > _MAX_SESSIONS:
            _sessions.popitem(last=False)
    return session
