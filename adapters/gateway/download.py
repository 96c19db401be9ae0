"""Downloads a file the gateway's answer points to (qwen-tts leaves its audio at a URL), where it may.

The URL comes from an answer, so it is checked before anything is sent to it. The rule:

- http(s) only, and never with a credential in it; an `http://` URL on `*.aliyuncs.com` is fetched
  over https, as LiteLLM does.
- On the host of one of the configured endpoints (the gateway itself): fetched like any gateway
  request, with the consumer's auth when the origin (scheme, host, port) is the endpoint's own.
- On a host the operator lists in AIGW_DOWNLOAD_HOSTS (names, or addresses and networks such as
  10.0.0.0/8; gateway/config.py reads it): fetched without auth wherever it resolves.
- Anywhere else (DashScope's pre-signed OSS URLs): the name is resolved once, every address it
  resolves to must be a public one (not loopback, link-local such as the 169.254.169.254 metadata
  address, private, carrier-grade NAT such as Alibaba Cloud's 100.100.100.200, unique-local,
  multicast or reserved), and the connection goes to that checked address (the name still in the
  Host header and the TLS server name), so a second lookup cannot rebind it elsewhere. No auth.
- Redirects are not followed; the answer must be audio by its Content-Type or its first bytes (the
  caller's `wanted`), at most DOWNLOAD_LIMIT bytes, by the invocation's deadline.

Error messages name the URL's host and path, never its query (the signature of a pre-signed URL).
LiteLLM's own download is not used: it has its own client, and refuses every private address, which
a gateway inside a VPC legitimately hands out on its own host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpx
from dify_plugin.errors.model import InvokeBadRequestError, InvokeConnectionError

from adapters.gateway.body import Budget, bind, read_limited
from adapters.gateway.errors import stream_error
from adapters.gateway.limits import DOWNLOAD_LIMIT
from adapters.gateway.transport import GatewaySession

_DEFAULT_PORTS = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def is_public(address: Address) -> bool:
    """Whether an address is one the internet routes to anybody (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


def _operator_allows(host: str, addresses: list[Address], allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if host == entry:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if addresses and all(address in network for address in addresses):
            return True
    return False


def fetch(
    session: GatewaySession,
    url: str,
    *,
    what: str,
    route_path: str,
    budget: Budget,
    wanted: Callable[[str, bytes], bool],
) -> bytes:
    """GET `what` (e.g. "the audio") from `url`, named by an answer of `route_path`, if the rule above
    lets it; `wanted(content_type, body)` tells whether the answer is what was asked for."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx's message quotes the URL, which may carry a pre-signed query: only its length is told.
        raise stream_error(route_path, f"the URL of {what} ({len(url)} characters) is not a URL") from exc
    if target.scheme not in _DEFAULT_PORTS or not target.host:
        raise stream_error(route_path, f"the URL of {what} is not an http(s) URL (scheme {target.scheme!r})")
    if target.userinfo:
        raise stream_error(route_path, f"the URL of {what} carries a user name or password, which is not sent")
    if target.scheme == "http" and target.host.endswith(".aliyuncs.com"):
        target = target.copy_with(scheme="https")
    where = f"{target.scheme}://{target.host}{target.path}"
    deadline = budget.deadline
    gateways = [httpx.URL(endpoint.base_url) for endpoint in session.config.endpoints]
    if _origin(target) in {_origin(gateway) for gateway in gateways}:
        # The gateway's own origin: its auth and error mapping.
        request = session.client.build_request("GET", target)
        response = session.send_request(request, deadline=deadline, limit=DOWNLOAD_LIMIT, what=what, hold=budget.hold)
        return _checked(response, response.content, what, where, route_path, wanted)
    request = _pinned_request(session, target, gateways, what, route_path)
    bind(request, deadline, session.config.timeouts.read, session.config.timeouts.read_limit())
    try:
        response = deadline.keep(request, lambda: session.client.send(request, auth=None, stream=True))
        if response.is_redirect:
            response.close()
            problem = f"downloading {what} from {where} answered a redirect, which is not followed"
            raise stream_error(route_path, problem)
        if not response.is_success:
            response.close()
            raise stream_error(route_path, f"downloading {what} from {where} answered HTTP {response.status_code}")
        body = read_limited(response, DOWNLOAD_LIMIT, what, budget.hold)
        return _checked(response, body, what, where, route_path, wanted)
    except httpx.HTTPError as exc:
        raise InvokeConnectionError(f"Downloading {what} from {where} failed: {exc}") from exc


def _pinned_request(
    session: GatewaySession, target: httpx.URL, gateways: list[httpx.URL], what: str, route_path: str
) -> httpx.Request:
    """The GET of `target`, sent to the address the rule allowed (a public one unless the host is the
    gateway's or the operator's)."""
    host = target.host.lower()
    port = target.port or _DEFAULT_PORTS[target.scheme]
    try:
        addresses = _addresses(host, port)
    except OSError as exc:
        raise InvokeConnectionError(f"The host of {what} ({host}) could not be resolved: {exc}") from exc
    if host in {gateway.host.lower() for gateway in gateways} or _operator_allows(
        host, addresses, session.config.download_hosts
    ):
        return session.client.build_request("GET", target)
    refused = [address for address in addresses if not is_public(address)]
    if refused or not addresses:
        raise InvokeBadRequestError(
            f"AI Gateway answer from {route_path} points {what} at {target.scheme}://{host}{target.path}, "
            f"which resolves to {refused[0] if refused else 'no address'}: a loopback, private, link-local or "
            "otherwise non-public address, not fetched. If the file really is there, list the host in "
            "AIGW_DOWNLOAD_HOSTS."
        )
    pinned = target.copy_with(host=str(addresses[0]))
    return session.client.build_request(
        "GET", pinned, headers={"Host": target.netloc.decode()}, extensions={"sni_hostname": host}
    )


def _checked(
    response: httpx.Response,
    body: bytes,
    what: str,
    where: str,
    route_path: str,
    wanted: Callable[[str, bytes], bool],
) -> bytes:
    content_type = response.headers.get("content-type", "")
    if not body or not wanted(content_type, body):
        shown = content_type.split(";")[0].strip() or "no Content-Type"
        raise stream_error(route_path, f"{what} from {where} is not audio ({shown}, {len(body)} bytes)")
    return body
