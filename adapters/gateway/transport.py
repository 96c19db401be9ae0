"""The one HTTP layer between LiteLLM's request/response translation and the gateway.

Each credential set gets one `GatewaySession`: a pooled keep-alive httpx client whose auth object
(adapters/gateway/auth/) sees the exact request that goes on the wire, so JWT and HMAC slot in without
the adapters knowing. Sessions are cached at module level because Dify builds a new model object
for every request; a session never changes after it is built, so concurrent requests share it
safely, and requests with different credentials never share one.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import httpx

from adapters.catalog.loader import Route
from adapters.gateway.auth import auth_config
from adapters.gateway.endpoint import Endpoint, endpoint_from_credentials
from adapters.gateway.errors import error_from_response, error_from_transport
from adapters.gateway.retry import RETRY_STATUSES, RetryPolicy, retry_policy_from_credentials

# httpx logs every request URL at INFO, and the SDK forwards INFO logs to Dify; a URL can carry an
# API key in its query (consumers set up that way), so these loggers speak only on warnings.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_MAX_SESSIONS = 64
_MAX_ERROR_BODY = 64 * 1024
_CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def _ssl_context() -> ssl.SSLContext:
    """Public roots plus a private CA from SSL_CERT_FILE / REQUESTS_CA_BUNDLE, built once per cache key."""
    context = ssl.create_default_context(cafile=certifi.where())
    for name in _CA_ENV:
        if path := os.environ.get(name):
            context.load_verify_locations(cafile=path)
    return context


_ssl_lock = threading.Lock()
_ssl_cache: dict[tuple[str, ...], ssl.SSLContext] = {}


def shared_ssl_context() -> ssl.SSLContext:
    # Building an SSLContext costs ~18 ms, so one is shared by every client with the same CA settings.
    key = tuple(os.environ.get(name, "") for name in _CA_ENV)
    with _ssl_lock:
        if key not in _ssl_cache:
            _ssl_cache[key] = _ssl_context()
        return _ssl_cache[key]


# Failures where the gateway never saw the request (or dropped it before answering): safe to resend.
_NEVER_ANSWERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class GatewaySession:
    endpoint: Endpoint
    client: httpx.Client
    retry: RetryPolicy

    def send(
        self,
        route: Route,
        *,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST to a route; returns a 2xx response (open when `stream`) or raises a mapped InvokeError."""
        request = self.client.build_request(
            "POST",
            self.endpoint.url(route),
            json=json,
            files=files,
            data=data,
            headers=headers,
            timeout=self.endpoint.timeout(),
        )
        return self.send_request(request, stream=stream)

    def send_request(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send with retries (gateway/retry.py); each attempt runs the auth flow again, so is freshly signed."""
        attempt = 0
        while True:
            try:
                response = self.client.send(request, stream=True)
            except _NEVER_ANSWERED as exc:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise error_from_transport(request.method, request.url, exc, attempt + 1) from exc
            except httpx.HTTPError as exc:
                raise error_from_transport(request.method, request.url, exc, attempt + 1) from exc
            else:
                if response.status_code < 400:
                    break
                body = _error_body(response)
                retryable = response.status_code in RETRY_STATUSES
                delay = self.retry.delay(attempt, response.headers) if retryable else None
                if delay is None:
                    raise error_from_response(request.method, request.url, response, body, attempt + 1)
            time.sleep(delay)
            attempt += 1
        if not stream:
            try:
                response.read()
            except httpx.HTTPError as exc:
                raise error_from_transport(request.method, request.url, exc) from exc
            finally:
                response.close()
        return response


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


_sessions: OrderedDict[tuple[tuple[str, str], ...], GatewaySession] = OrderedDict()
_sessions_lock = threading.Lock()


def _session_key(credentials: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    # CA settings are part of the key: a changed SSL_CERT_FILE must not reuse an old context.
    ca = tuple((name, os.environ.get(name, "")) for name in _CA_ENV)
    return tuple(sorted((str(k), str(v)) for k, v in credentials.items())) + ca


def session_for(credentials: Mapping[str, Any]) -> GatewaySession:
    """The session for a credential set; built (and its credentials checked) on first use."""
    key = _session_key(credentials)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None:
            _sessions.move_to_end(key)
            return session
    endpoint = endpoint_from_credentials(credentials)
    retry = retry_policy_from_credentials(credentials)
    client = httpx.Client(
        auth=auth_config(credentials).client_auth(),
        verify=shared_ssl_context(),
        timeout=endpoint.timeout(),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=32),
        follow_redirects=False,
    )
    session = GatewaySession(endpoint, client, retry)
    with _sessions_lock:
        # Evicted clients are not closed here: a request on another greenlet may still be using one.
        _sessions[key] = session
        while len(_sessions) > _MAX_SESSIONS:
            _sessions.popitem(last=False)
    return session
