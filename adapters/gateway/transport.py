"""The one HTTP layer between LiteLLM's request/response translation and the gateway.

Each gateway configuration (adapters/gateway/config.py) gets one `GatewaySession`: a pooled
keep-alive httpx client whose auth object (adapters/gateway/auth/) sees the exact request that
goes on the wire, so JWT and HMAC slot in without the adapters knowing. Sessions are cached at
module level because Dify builds a new model object for every request. They are keyed on the
configuration they are built from (`config_key`), not on the whole credential set: models that
differ only in their model-form fields share one pool, and no secret is ever a cache key. A session
never changes after it is built, so concurrent requests share it safely, and requests with
different gateway credentials never share one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeError

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
from adapters.gateway.log import log_attempt
from adapters.gateway.redaction import Redactor
from adapters.gateway.retry import RETRY_STATUSES
from adapters.gateway.tls import trust_store

# httpx logs every request URL at INFO, and the SDK forwards INFO logs to Dify; a URL can carry an
# API key in its query (consumers set up that way), so these loggers speak only on warnings.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_MAX_SESSIONS = 64
_MAX_ERROR_BODY = 64 * 1024


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


def _worth_resending(exc: httpx.HTTPError) -> bool:
    """The gateway never saw the request, and another attempt could succeed: a certificate that
    failed verification fails the same way every time."""
    return isinstance(exc, _NEVER_ANSWERED) and not is_untrusted_certificate(exc)


# The response extension holding (attempt number, monotonic start) of the attempt that answered.
_ATTEMPT = "aigw.attempt"


@dataclass(frozen=True, slots=True)
class GatewaySession:
    config: GatewayConfig
    client: httpx.Client

    @property
    def endpoint(self) -> Endpoint:
        return self.config.endpoint

    def redactor(self, request: httpx.Request | None = None) -> Redactor:
        """Masks this configuration's credential values, and those its auth put on `request`."""
        return Redactor(self.config.secrets(request))

    def reporting(self, request: httpx.Request | None = None) -> AbstractContextManager[None]:
        """Around work whose failure reaches Dify: raised as a mapped InvokeError with no credential
        value in its text (`redactor`) and no chain of causes (gateway/errors.py, `as_reported`)."""
        return reporting(lambda text: self.redactor(request)(text))

    def send(
        self,
        path: str,
        *,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        stream: bool = False,
        answer: Answer = Answer.JSON,
    ) -> httpx.Response:
        """POST to a route path; returns a 2xx response (open when `stream`) or raises a mapped InvokeError.

        A streamed request asks for `text/event-stream`; any other asks for what `answer` names.
        """
        accept = Answer.EVENT_STREAM if stream else answer
        request = self.client.build_request(
            "POST",
            self.endpoint.url(path),
            json=json,
            files=files,
            data=data,
            headers={"Accept": accept.value},
        )
        return self.send_request(request, stream=stream)

    def send_request(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send with retries (gateway/retry.py); each attempt runs the auth flow again, so is freshly signed."""
        with self.reporting(request):
            return self._send_with_retries(request, stream)

    def _send_with_retries(self, request: httpx.Request, stream: bool) -> httpx.Response:
        attempt = 1
        while True:
            started = time.monotonic()
            try:
                response = self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                status, request_id = failure_kind(exc), None
                delay = self.config.retry.delay(attempt - 1) if _worth_resending(exc) else None
                error = self.transport_error(request, exc, attempt)
            else:
                if response.status_code < 300:
                    break
                status = response.status_code
                if status < 400:
                    response.close()
                    request_id, delay = header_request_id(response.headers), None
                    error = redirect_error(request, response, self.endpoint.base_url)
                else:
                    body = _error_body(response)
                    request_id = request_id_of(response, body)
                    retryable = status in RETRY_STATUSES
                    delay = self.config.retry.delay(attempt - 1, response.headers) if retryable else None
                    error = error_from_response(request.method, request.url, response, body, attempt)
            if delay is None:
                self._log("failure", request, status, request_id, attempt, started)
                raise error
            self._log("retry", request, status, request_id, attempt, started, retry_in_s=delay)
            time.sleep(delay)
            attempt += 1
        response.extensions[_ATTEMPT] = (attempt, started)
        if not stream:
            try:
                response.read()
            except httpx.HTTPError as exc:
                self.log_broken_answer(response, exc)
                raise self.transport_error(request, exc) from exc
            finally:
                response.close()
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
        )

    def log_broken_answer(self, response: httpx.Response, exc: Exception) -> None:
        """The final-failure log line for a 2xx answer that broke while it was read (a cut stream)."""
        attempt, started = response.extensions.get(_ATTEMPT, (1, time.monotonic()))
        problem = failure_kind(exc) if isinstance(exc, httpx.HTTPError) else type(exc).__name__
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
        log_attempt(event, request, status=status, request_id=request_id, attempt=attempt, attempts=attempts,
                    started=started, redact=redact, **fields)  # fmt: skip


def _error_body(response: httpx.Response) -> bytes:
    """At most _MAX_ERROR_BODY bytes of an error body: an HTML page or a runaway stream is not read whole."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass  # the status line already says what went wrong
    finally:
        response.close()
    return b"".join(chunks)


_sessions: OrderedDict[bytes, GatewaySession] = OrderedDict()
_sessions_lock = threading.Lock()


def open_session(config: GatewayConfig) -> GatewaySession:
    client = httpx.Client(
        auth=config.auth.client_auth(),
        headers=dict(config.extra_headers),
        verify=trust_store(config.tls),
        timeout=config.timeouts.for_httpx(),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=32),
        follow_redirects=False,
    )
    return GatewaySession(config, client)


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
