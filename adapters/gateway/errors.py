"""Maps everything that can go wrong on the way to the gateway onto Dify's InvokeError classes.

    HTTP status from the gateway            Dify error
    401, 403                                InvokeAuthorizationError
    429                                     InvokeRateLimitError (with the gateway's reset hint)
    500, 502, 503, 504                      InvokeServerUnavailableError
    408, connect/read timeouts, resets      InvokeConnectionError
    400, 404, 413, 422 and other 4xx        InvokeBadRequestError
    3xx (redirects are never followed)      InvokeBadRequestError naming the target
    malformed JSON, stream cut short        InvokeServerUnavailableError

Every message names the gateway route (path only: a query may hold a key), carries the gateway's
own words and request id where it sent them, and never a credential: what leaves the plugin goes
through `as_reported`, which masks the session's credential values (adapters/gateway/redaction.py)
and cuts the error from the exceptions that caused it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import httpx
import pydantic
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

_MAX_MESSAGE = 500
RESET_HEADERS = ("x-tokenratelimit-reset", "x-ratelimit-reset", "retry-after")
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-acs-request-id", "eagleeye-traceid")

# The table the SDK asks every model for; `to_invoke_error` below does the actual mapping.
INVOKE_ERROR_MAPPING: Mapping[type[InvokeError], list[type[Exception]]] = {
    InvokeConnectionError: [httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError],
    InvokeServerUnavailableError: [httpx.ProxyError, json.JSONDecodeError],
    InvokeBadRequestError: [httpx.UnsupportedProtocol, httpx.InvalidURL],
    InvokeAuthorizationError: [],
    InvokeRateLimitError: [],
}


def _status_class(status: int) -> type[InvokeError]:
    if status in (401, 403):
        return InvokeAuthorizationError
    if status == 429:
        return InvokeRateLimitError
    if status == 408:
        return InvokeConnectionError
    if status >= 500:
        return InvokeServerUnavailableError
    return InvokeBadRequestError


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def gateway_message(body: bytes, content_type: str = "") -> tuple[str, str | None]:
    """The gateway's own error words and request id from an error body of any of its shapes."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        request_id = data.get("request_id") or data.get("requestId")
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or json.dumps(error, ensure_ascii=False)
        elif isinstance(error, str):
            message = error
        else:
            code, detail = data.get("code"), data.get("message")
            message = f"{code}: {detail}" if code and detail else str(detail or code or text)
        return _clip(str(message)), str(request_id) if request_id else None
    if "html" in content_type.lower() or text.lstrip().lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        return _clip(f"HTML error page: {text}"), None
    return _clip(text) if text else "(empty body)", None


def header_request_id(headers: httpx.Headers) -> str | None:
    """The gateway's request id from the response headers, where it sent one."""
    return next((headers[name] for name in _REQUEST_ID_HEADERS if name in headers), None)


def request_id_of(response: httpx.Response, body: bytes = b"") -> str | None:
    """The request id of an answer: from its error body (DashScope's `request_id`), else its headers."""
    from_body = gateway_message(body, response.headers.get("content-type", ""))[1] if body else None
    return from_body or header_request_id(response.headers)


def rate_limit_hint(headers: httpx.Headers) -> str | None:
    for name in RESET_HEADERS:
        value = headers.get(name)
        if value:
            return f"retry after {value} s ({name})"
    return None


def error_from_response(
    method: str, url: httpx.URL, response: httpx.Response, body: bytes, attempts: int = 1, proxy: str | None = None
) -> InvokeError:
    """The InvokeError for a gateway answer with an error status (the body already read); `proxy`
    names the proxy the request went through, which may have answered in the gateway's place."""
    headers = response.headers
    message, request_id = gateway_message(body, headers.get("content-type", ""))
    details = [f"after {attempts} attempts"] if attempts > 1 else []
    if proxy:
        details.append(f"through the proxy {proxy}")
    if hint := (rate_limit_hint(headers) if response.status_code == 429 else None):
        details.append(hint)
    if sts := headers.get("x-ca-error-message"):
        # Higress hmac-auth answers a bad signature with its own string-to-sign; the operator needs it.
        details.append(f"gateway {sts}")
    request_id = request_id or header_request_id(headers)
    if request_id:
        details.append(f"request id {request_id}")
    suffix = f" ({'; '.join(details)})" if details else ""
    text = f"AI Gateway answered HTTP {response.status_code} to {method} {url.path}: {message}{suffix}"
    # Higress hmac-auth rejects a signature with 400; for the user that is a credentials problem.
    error_class = InvokeAuthorizationError if sts else _status_class(response.status_code)
    return error_class(text)


def redirect_error(request: httpx.Request, response: httpx.Response, base_url: str) -> InvokeError:
    """The InvokeError for a 3xx: redirects are never followed, since that would send the prompt and
    the credentials on to another address. The message names the target (without its query, which
    may hold a key) and, when it is the same route elsewhere, the endpoint_url that reaches it."""
    text = f"AI Gateway answered HTTP {response.status_code} to {request.method} {request.url.path}"
    location = response.headers.get("location")
    if not location:
        return InvokeBadRequestError(f"{text}: a redirect without a Location header; check endpoint_url.")
    target = request.url.join(location)
    shown = f"{target.scheme}://{target.netloc.decode()}{target.path}"
    base_path = httpx.URL(base_url).path.rstrip("/")
    route = request.url.path.removeprefix(base_path)
    advice = "check endpoint_url"
    if route and target.path.endswith(route):
        advice = f"set endpoint_url to {target.scheme}://{target.netloc.decode()}{target.path.removesuffix(route)}/v1"
    return InvokeBadRequestError(
        f"{text}: a redirect to {shown}, which the plugin does not follow (it would resend the prompt and "
        f"the credentials); {advice}."
    )


# How a request failed without an answer, as the log names it (gateway/log.py); first match wins.
_FAILURE_KINDS: Final = (
    (httpx.ConnectTimeout, "connect_timeout"),
    (httpx.WriteTimeout, "write_timeout"),
    (httpx.PoolTimeout, "pool_timeout"),
    (httpx.TimeoutException, "read_timeout"),
    (httpx.ProxyError, "proxy_error"),
    (httpx.ConnectError, "connect_error"),
    (httpx.RemoteProtocolError, "connection_closed"),
    (httpx.HTTPError, "network_error"),
)


def failure_kind(exc: BaseException) -> str:
    """A short name for how a request failed without an answer, e.g. "read_timeout"."""
    if is_untrusted_certificate(exc):
        return "tls_untrusted"
    return next((kind for cause, kind in _FAILURE_KINDS if isinstance(exc, cause)), type(exc).__name__)


def is_untrusted_certificate(exc: BaseException) -> bool:
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


def error_from_transport(
    method: str,
    url: httpx.URL,
    exc: Exception,
    *,
    read_limit: str,
    connect_limit: str,
    attempts: int = 1,
    proxy: str | None = None,
) -> InvokeError:
    """The InvokeError for a request that never got a complete answer; a timeout says how long it
    waited and what set that limit (`read_limit`, `connect_limit`: gateway/config.py `Timeouts`).

    Through a proxy (`proxy`, e.g. "10.0.0.5:3128 (HTTPS_PROXY)"), a failure to connect is the
    proxy's: the plugin connects to the proxy only, and the proxy to the gateway. The message then
    names the proxy, not the gateway; every other failure mentions it."""
    where = f"{method} {url.scheme}://{url.netloc.decode()}{url.path}"
    if attempts > 1:
        where += f" ({attempts} attempts)"
    if proxy and not is_untrusted_certificate(exc):
        if isinstance(exc, httpx.ProxyError):
            return InvokeConnectionError(f"The proxy {proxy} did not open the way to the AI Gateway at {where}: {exc}")
        if isinstance(exc, httpx.ConnectTimeout):
            return InvokeConnectionError(
                f"Could not connect to the proxy {proxy} for the AI Gateway at {where} within {connect_limit}."
            )
        if isinstance(exc, httpx.ConnectError):
            return InvokeConnectionError(f"Could not connect to the proxy {proxy} for the AI Gateway at {where}: {exc}")
    error = _direct_transport_error(where, exc, read_limit=read_limit, connect_limit=connect_limit)
    if proxy and isinstance(error, InvokeConnectionError):
        return InvokeConnectionError(f"{error} (through the proxy {proxy})")
    return error


def _direct_transport_error(where: str, exc: Exception, *, read_limit: str, connect_limit: str) -> InvokeError:
    if isinstance(exc, httpx.ConnectTimeout):
        return InvokeConnectionError(f"Could not connect to the AI Gateway at {where} within {connect_limit}.")
    if isinstance(exc, httpx.WriteTimeout):
        return InvokeConnectionError(f"The AI Gateway at {where} took no more of the request for {read_limit}.")
    if isinstance(exc, httpx.PoolTimeout):
        return InvokeConnectionError(f"Every connection to the AI Gateway at {where} stayed busy for {read_limit}.")
    if isinstance(exc, httpx.TimeoutException):
        return InvokeConnectionError(f"The AI Gateway at {where} sent nothing for {read_limit}.")
    if is_untrusted_certificate(exc):
        return InvokeConnectionError(
            f"TLS certificate of the AI Gateway at {where} is not trusted: {exc}. "
            "If the gateway uses a private CA, set SSL_CERT_FILE (a bundle) or SSL_CERT_DIR (a hashed "
            "directory) to it in the plugin daemon's environment."
        )
    if isinstance(exc, httpx.ConnectError):
        return InvokeConnectionError(f"Could not connect to the AI Gateway at {where}: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return InvokeConnectionError(f"The connection to the AI Gateway at {where} failed: {exc}")
    return to_invoke_error(exc)


def stream_error(route_path: str, problem: str) -> InvokeError:
    """An answer the plugin cannot use; `problem` says what was wrong, never quoting the answer."""
    return InvokeServerUnavailableError(f"AI Gateway answer from {route_path} is unusable: {problem}")


# What an in-stream error that carries no HTTP status means, by its `type` or its `code` (OpenAI and
# Groq `type`s; DashScope's `code`, which it answers with HTTP 400 before a stream starts).
_ERROR_KIND_STATUS = {
    "invalid_request_error": 400,
    "tool_use_failed": 400,
    "context_length_exceeded": 400,
    "data_inspection_failed": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
    "service_unavailable": 503,
}


def _event_status(error: Mapping[str, Any]) -> int:
    """The HTTP status an in-stream error stands for: its own status field, else its kind, else 500."""
    for field in ("status_code", "status", "code"):
        value = error.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
        if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
            return int(value)
    for field in ("type", "code"):
        if (status := _ERROR_KIND_STATUS.get(str(error.get(field)).lower())) is not None:
            return status
    return 500


_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


def field_names(data: Mapping[str, Any]) -> str:
    """The top-level field names of an answer object, for an error; names that do not look like
    field names (an answer's text used as a key) are counted, not shown."""
    names = [name for name in data if isinstance(name, str) and _NAME.fullmatch(name)]
    shown = ", ".join(names[:8]) or "none"
    hidden = len(data) - len(names[:8])
    return shown + (f" and {hidden} more" if hidden else "")


def why_unreadable(exc: BaseException) -> str:
    """What kind of failure reading an answer raised, without the exception's text.

    Exception messages of parsers quote what they could not read (LiteLLM's even carry a whole
    traceback), which would put the answer into the error, so only the exception types are
    named, plus the missing key of a KeyError when it looks like a field name.
    """
    kinds = [type(exc).__name__]
    cause = exc.__cause__ or exc.__context__
    if cause is not None and type(cause) is not type(exc):
        kinds.append(f"from {type(cause).__name__}")
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) and _NAME.fullmatch(exc.args[0]):
        kinds.append(f"on field {exc.args[0]!r}")
    return " ".join(kinds)


def error_from_event(route_path: str, data: Mapping[str, Any]) -> InvokeError:
    """The InvokeError for an `{"error": …}` event inside an otherwise successful stream."""
    message, request_id = gateway_message(json.dumps(data, ensure_ascii=False).encode())
    error = data.get("error")
    status = _event_status(error) if isinstance(error, Mapping) else 500
    suffix = f" (request id {request_id})" if request_id else ""
    return _status_class(status)(f"AI Gateway stream from {route_path} reported an error: {message}{suffix}")


def to_invoke_error(exc: BaseException) -> InvokeError:
    """Any exception as an InvokeError; ones already mapped pass through unchanged."""
    if isinstance(exc, InvokeError):
        return exc
    if isinstance(exc, CredentialsValidateFailedError):
        # Credentials that cannot work (found while invoking, not while saving them in Dify).
        return InvokeAuthorizationError(str(exc))
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        return _status_class(status)(f"AI Gateway error (HTTP {status}): {_clip(str(exc))}")
    for invoke_error, causes in INVOKE_ERROR_MAPPING.items():
        if isinstance(exc, tuple(causes)):
            return invoke_error(f"AI Gateway request failed: {_clip(str(exc))}")
    if isinstance(exc, pydantic.ValidationError):
        # Its text quotes the values it refused, and a value built from an answer is the user's data.
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['type']}" for e in errors[:5])
        return InvokeError(f"AI Gateway request failed: {exc.title} rejected {exc.error_count()} value(s) ({where})")
    return InvokeError(f"AI Gateway request failed: {type(exc).__name__}: {_clip(str(exc))}")


def as_reported(exc: BaseException, redact: Callable[[str], str] | None = None) -> InvokeError:
    """`exc` as the InvokeError Dify is given: mapped, with `redact` masking its text, and with no
    chain of causes, on it or on `exc`.

    The SDK sends Dify the traceback of whatever a model raises, causes included, and raises the
    mapped error `from` the original. A cause's message may quote what the plugin must not
    report: an answer (a parser's message, LiteLLM's traceback text with the response in it), a
    header value (httpx's), an unmasked gateway message. So both lose their chain, and the
    traceback shows the reported message only.
    """
    error = to_invoke_error(exc)
    if redact is not None and (masked := redact(str(error))) != str(error):
        error = type(error)(masked)
    for done in (exc, error):
        done.__cause__ = done.__context__ = None
        done.__suppress_context__ = True
    return error


@contextmanager
def reporting(redact: Callable[[str], str] | None = None) -> Iterator[None]:
    """Around code whose failure goes to Dify as is (a relayed stream): re-raised `as_reported`."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised, mapped; `from None` keeps causes out of Dify's traceback
        raise as_reported(exc, redact) from None
