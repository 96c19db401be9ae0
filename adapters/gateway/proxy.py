"""Which proxy, if any, a request goes through: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY.

Read once per gateway configuration from the environment, lowercase names first as curl and
Python's urllib read them. A request to an `https://` URL goes through HTTPS_PROXY (a CONNECT
tunnel: the proxy sees the host and port, not the request), one to an `http://` URL through
HTTP_PROXY (the proxy sees the whole request), either else through ALL_PROXY. A proxy URL is
`http://` (a bare `host:port` reads as one) or `https://`; `socks5://` and `socks5h://` are
handed to httpx's SOCKS support as they are (not exercised by the tests).

No proxy is used for a host NO_PROXY names. Its comma-separated entries are `*` (no proxy for any
host), a domain (`example.com` or `.example.com`: it and every subdomain), an IP address, or an IP
network in CIDR form (`10.0.0.0/8`, `fd00::/8`, matching hosts written as addresses in it), each
optionally with `:port`. httpx cannot match CIDR entries, so the choice is made here for every
request (`ProxyConfig.proxy_for`), by the `ProxyRouter` transport sessions use when a proxy is set.

A proxy URL may carry `user:password@`: those are secrets (`ProxyConfig.secrets`, masked from every
report) and a proxy is only ever shown as `host:port` and the variable that set it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

import httpx

from adapters.credentials import environment_error

PROXY_ENVIRONMENT: Final = tuple(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base.lower(), base)
)
_SCHEMES: Final = ("http", "https", "socks5", "socks5h")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Proxy:
    variable: str  # the environment variable that named it, as spelled there
    url: str = field(repr=False)  # may carry user:password
    shown: str  # host:port, what messages and logs name

    def describe(self) -> str:
        return f"{self.shown} ({self.variable})"


@dataclass(frozen=True, slots=True)
class _Bypass:
    """One NO_PROXY entry: a domain or an IP network, on every port or one."""

    domain: str | None = None
    network: Network | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        return host == self.domain or host.endswith(f".{self.domain}")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    http: Proxy | None = None
    https: Proxy | None = None
    all: Proxy | None = None
    bypass: tuple[_Bypass, ...] = ()
    bypass_all: bool = False  # NO_PROXY=*

    @property
    def configured(self) -> tuple[Proxy, ...]:
        """The distinct proxies a request may go through; empty when every request goes direct."""
        if self.bypass_all:
            return ()
        return tuple(dict.fromkeys(p for p in (self.http, self.https, self.all) if p is not None))

    def proxy_for(self, url: httpx.URL) -> Proxy | None:
        """The proxy a request to `url` goes through, or None for a direct connection."""
        if not self.configured:
            return None
        host = url.host.lower().rstrip(".")
        port = url.port or (443 if url.scheme == "https" else 80)
        if any(entry.matches(host, port) for entry in self.bypass):
            return None
        return (self.https if url.scheme == "https" else self.http) or self.all

    def secrets(self) -> tuple[tuple[str, str], ...]:
        """(label, value) of the user names and passwords in the proxy URLs."""
        found = []
        for proxy in self.configured:
            parts = urlsplit(proxy.url)
            found.append((f"{proxy.variable} user", unquote(parts.username or "")))
            found.append((f"{proxy.variable} password", unquote(parts.password or "")))
        return tuple((label, value) for label, value in found if value)


def proxy_config(environment: Mapping[str, str]) -> ProxyConfig:
    """The proxies the PROXY_ENVIRONMENT variables of `environment` set; a bad one fails naming it."""

    def variable(base: str) -> tuple[str, str]:
        for name in (base.lower(), base):
            if value := environment.get(name, "").strip():
                return name, value
        return base, ""

    proxies = {}
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        name, value = variable(base)
        proxies[base] = _proxy(name, value) if value else None
    name, value = variable("NO_PROXY")
    entries = [entry.strip().lower() for entry in value.replace(" ", ",").split(",") if entry.strip()]
    return ProxyConfig(
        http=proxies["HTTP_PROXY"],
        https=proxies["HTTPS_PROXY"],
        all=proxies["ALL_PROXY"],
        bypass=tuple(_bypass(name, entry) for entry in entries if entry != "*"),
        bypass_all="*" in entries,
    )


def _proxy(name: str, value: str) -> Proxy:
    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 1080 if parts.scheme.startswith("socks") else 80)
    except ValueError:
        port = None
    if parts.scheme not in _SCHEMES or not parts.hostname or port is None:
        # Not quoted: the value may carry a password.
        raise environment_error(name, "must be a proxy URL such as http://proxy.example.com:3128.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Proxy(name, url, f"{host}:{port}")


def _bypass(name: str, entry: str) -> _Bypass:
    host, port = entry, None
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") or None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    try:
        port_number = int(port) if port else None
    except ValueError:
        raise environment_error(name, f"the entry {entry!r} has a port that is not a number.") from None
    try:
        return _Bypass(network=ipaddress.ip_network(host, strict=False), port=port_number)
    except ValueError:
        return _Bypass(domain=host.removeprefix("*.").lstrip(".").rstrip("."), port=port_number)


class ProxyRouter(httpx.BaseTransport):
    """The transport of a session with proxies: each request direct or through the proxy its URL gets."""

    def __init__(self, proxies: ProxyConfig, transport: Callable[[Proxy | None], httpx.BaseTransport]) -> None:
        self._proxies = proxies
        self._direct = transport(None)
        self._through = {proxy: transport(proxy) for proxy in proxies.configured}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._proxies.proxy_for(request.url)
        return (self._direct if proxy is None else self._through[proxy]).handle_request(request)

    def close(self) -> None:
        for transport in (self._direct, *self._through.values()):
            transport.close()
