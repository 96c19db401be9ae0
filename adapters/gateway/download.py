"""Downloads a file the gateway's answer points to (qwen-tts leaves its audio at a URL).

The GET goes through the consumer session's client, so its TLS settings (private CA) apply, but
gateway credentials go only to the gateway: the consumer's auth is attached only when the URL has
the origin (scheme, host, port) of one of the configured endpoints. A file elsewhere (DashScope's pre-signed OSS URL)
is fetched without any auth, so an API key, JWT or HMAC signature never reaches a third party. An
`http://` URL on `*.aliyuncs.com` is fetched over https, as LiteLLM does. Error messages name the
URL's host and path, never its query (the signature of a pre-signed URL).

LiteLLM's own download (`transform_text_to_speech_response`) is not used: it has its own client and
refuses loopback and private addresses, which a gateway inside a VPC legitimately hands out. Which
URLs may be fetched is decided here, in `fetch`, and nowhere else.
"""

from __future__ import annotations

import httpx
from dify_plugin.errors.model import InvokeConnectionError

from adapters.gateway.body import Budget, bind, read_limited
from adapters.gateway.errors import stream_error
from adapters.gateway.limits import DOWNLOAD_LIMIT
from adapters.gateway.transport import GatewaySession

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def fetch(session: GatewaySession, url: str, *, what: str, route_path: str, budget: Budget) -> bytes:
    """GET `what` (e.g. "the audio") from `url`, named by an answer of `route_path`; with the consumer's
    auth only on the gateway's own origin; at most DOWNLOAD_LIMIT bytes, by the budget's deadline."""
    deadline = budget.deadline
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx's message quotes the URL, which may carry a pre-signed query: only its length is told.
        raise stream_error(route_path, f"the URL of {what} ({len(url)} characters) is not a URL") from exc
    if target.scheme not in _DEFAULT_PORTS or not target.host:
        raise stream_error(route_path, f"the URL of {what} is not an http(s) URL (scheme {target.scheme!r})")
    if target.scheme == "http" and target.host.endswith(".aliyuncs.com"):
        target = target.copy_with(scheme="https")
    request = session.client.build_request("GET", target)  # the session's timeouts
    if _origin(target) in {_origin(httpx.URL(endpoint.base_url)) for endpoint in session.config.endpoints}:
        # The gateway's auth and error mapping.
        return session.send_request(request, deadline=deadline, limit=DOWNLOAD_LIMIT, what=what).content
    where = f"{target.scheme}://{target.host}{target.path}"
    bind(request, deadline, session.config.timeouts.read, session.config.timeouts.read_limit())
    try:
        response = deadline.keep(request, lambda: session.client.send(request, auth=None, stream=True))
        if not response.is_success:
            response.close()
            raise stream_error(route_path, f"downloading {what} from {where} answered HTTP {response.status_code}")
        return read_limited(response, DOWNLOAD_LIMIT, what)
    except httpx.HTTPError as exc:
        raise InvokeConnectionError(f"Downloading {what} from {where} failed: {exc}") from exc
