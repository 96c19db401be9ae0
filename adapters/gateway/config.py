"""The gateway configuration a set of credentials describes: parsed once, typed, frozen.

`GatewayConfig.from_credentials` is the one reader of the gateway fields of Dify's credentials
(`GATEWAY_FORM_FIELDS`, the `gateway_fields` of provider_configs/provider.yaml, which both the
provider form and the model form carry; the rarely used ones packed in `gateway_options`) and of
the environment variables that change how the plugin connects (`ENVIRONMENT`). Any problem fails
as "Credential field '<name>': ..." before a request exists. Where each field goes:

    endpoints      (Endpoint, ...)      endpoint_url: one base URL, or several (failover.py)
    auth           ApiKeyConfig | JwtConfig | HmacConfig
                                        auth_method and that scheme's fields (adapters/gateway/auth/)
    retry          RetryPolicy          max_retries, retry_backoff (gateway_options)
    timeouts       Timeouts             timeout, else MAX_REQUEST_TIMEOUT, else 300 s; connect 10 s;
                                        the invocation's deadline AIGW_INVOCATION_TIMEOUT, else 540 s
    tls            TlsConfig            the private CAs SSL_CERT_FILE / SSL_CERT_DIR / REQUESTS_CA_BUNDLE name
                                        (adapters/gateway/tls.py)
    proxies        ProxyConfig          HTTP(S)_PROXY, ALL_PROXY, NO_PROXY (adapters/gateway/proxy.py)
    download_hosts (host or network, ...) AIGW_DOWNLOAD_HOSTS: where an answer's file URL may point
                                        besides the gateway and public addresses (gateway/download.py)
    extra_headers  ((name, value), ...) extra_headers: sent with every request (adapters/gateway/headers.py)
    attribution    bool                 request_attribution: on sends the invocation's Dify ids as headers

Secrets live only in fields left out of `repr()`: the auth configs' keys and the extra headers.
`secrets()` lists them for the one place that masks them out of errors and logs
(adapters/gateway/redaction.py).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import httpx

from adapters.credentials import converted, credential_error, environment_error, packed_options, text, with_options
from adapters.gateway.auth import AuthConfig, auth_config
from adapters.gateway.auth.api_key import ApiKeyConfig
from adapters.gateway.auth.hmac import HmacConfig
from adapters.gateway.endpoint import Endpoint, endpoints_from_field
from adapters.gateway.headers import HeaderError, extra_headers, secret_values
from adapters.gateway.limits import DEFAULT_INVOCATION_TIMEOUT, INVOCATION_TIMEOUT_VARIABLE
from adapters.gateway.proxy import PROXY_ENVIRONMENT, ProxyConfig, proxy_config
from adapters.gateway.retry import DEFAULT_BACKOFF, DEFAULT_MAX_RETRIES, MAX_WAIT, RetryPolicy
from adapters.gateway.tls import CA_ENVIRONMENT, TlsConfig, tls_config

# The gateway fields of both forms (provider.yaml `gateway_fields`), in form order.
GATEWAY_FORM_FIELDS: Final = (
    "endpoint_url",
    "auth_method",
    "api_key",
    "api_key_header",
    "api_key_prefix",
    "jwt_jwks",
    "jwt_consumer_id",
    "hmac_access_key",
    "hmac_secret_key",
    "timeout",
    "extra_headers",
    "request_attribution",
    "gateway_options",
)
# What `gateway_options` may hold, and the auth_method each applies to (None: any). Each was a form
# field of its own in earlier versions, and its stored value still counts where no option replaces it.
GATEWAY_OPTIONS: Final[Mapping[str, str | None]] = MappingProxyType(
    {
        "api_key_query": "api_key",
        "jwt_algorithm": "jwt",
        "jwt_consumer_claim": "jwt",
        "jwt_issuer": "jwt",
        "jwt_expiration": "jwt",
        "jwt_header_name": "jwt",
        "jwt_header_prefix": "jwt",
        "hmac_signature_method": "hmac",
        "max_retries": None,
        "retry_backoff": None,
    }
)
# Every credential field the gateway configuration is read from.
GATEWAY_FIELDS: Final = (*GATEWAY_FORM_FIELDS, *GATEWAY_OPTIONS)
DOWNLOAD_HOSTS_VARIABLE: Final = "AIGW_DOWNLOAD_HOSTS"
ENVIRONMENT: Final = (
    "MAX_REQUEST_TIMEOUT",
    INVOCATION_TIMEOUT_VARIABLE,
    DOWNLOAD_HOSTS_VARIABLE,
    *CA_ENVIRONMENT,
    *PROXY_ENVIRONMENT,
)

DEFAULT_READ_TIMEOUT: Final = 300.0
CONNECT_TIMEOUT: Final = 10.0
_MAX_READ_TIMEOUT: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    read: float = DEFAULT_READ_TIMEOUT
    connect: float = CONNECT_TIMEOUT
    read_set_by: str = "the plugin's default"  # named in the error a timeout gives, so the user knows what to change
    invocation: float = DEFAULT_INVOCATION_TIMEOUT  # the whole invocation, every request in it

    def for_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.read, connect=self.connect)

    def read_limit(self) -> str:
        """E.g. "300 s (read timeout; set by credential field 'timeout')"."""
        return f"{self.read:g} s (read timeout; set by {self.read_set_by})"

    def connect_limit(self) -> str:
        """E.g. "10 s (connect timeout; the plugin's fixed limit)"."""
        if self.connect < CONNECT_TIMEOUT:
            return f"{self.connect:g} s (connect timeout; the read timeout, set by {self.read_set_by})"
        return f"{self.connect:g} s (connect timeout; the plugin's fixed limit)"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    endpoints: tuple[Endpoint, ...]
    auth: AuthConfig
    retry: RetryPolicy
    timeouts: Timeouts
    tls: TlsConfig
    proxies: ProxyConfig
    download_hosts: tuple[str, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    attribution: bool = False

    def secrets(self, request: httpx.Request | None = None) -> tuple[tuple[str, str], ...]:
        """(field, value) of every credential value, with those the auth put on `request` (a JWT, an
        HMAC signature), those of the proxies and the invocation's extra headers on `request`: what a
        report must mask (gateway/redaction.py)."""
        headers = ((f"header {name}", value) for name, value in self.extra_headers)
        return (*self.auth.secrets(request), *headers, *self.proxies.secrets(), *secret_values(request))

    @property
    def endpoint(self) -> Endpoint:
        """The first endpoint: where requests go while it works (failover.py)."""
        return self.endpoints[0]

    def credential_headers(self) -> tuple[str, ...]:
        """The header the consumer's key or token travels in, if the scheme chose one: never an extra header."""
        return _credential_headers(self.auth)

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> GatewayConfig:
        """Reads `credentials` (never mutating it) and the environment; fails naming the field at fault."""
        fields = gateway_fields(credentials)
        environment = dict(zip(ENVIRONMENT, _environment(), strict=True))
        auth = auth_config(fields)
        return cls(
            endpoints=endpoints_from_field(text(fields, "endpoint_url")),
            auth=auth,
            retry=_retry_policy(fields),
            timeouts=_timeouts(fields, environment["MAX_REQUEST_TIMEOUT"], environment[INVOCATION_TIMEOUT_VARIABLE]),
            tls=tls_config(environment),
            proxies=proxy_config(environment),
            download_hosts=_download_hosts(environment[DOWNLOAD_HOSTS_VARIABLE]),
            extra_headers=_extra_headers(fields, auth),
            attribution=_switch(fields, "request_attribution"),
        )


def gateway_fields(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway settings of a credential set by field name, `gateway_options` unpacked, absent ones None.

    Nothing else reaches the parsers. An option for another auth method fails, naming it: it
    would change nothing, and a setting that silently does nothing is a setting nobody can debug.
    """
    options = packed_options(credentials, "gateway_options", tuple(GATEWAY_OPTIONS))
    method = text(credentials, "auth_method").lower() or "api_key"
    for name in options:
        if GATEWAY_OPTIONS[name] not in (None, method):
            raise credential_error(
                "gateway_options", f"{name!r} applies to auth_method {GATEWAY_OPTIONS[name]}, not {method}."
            )
    names = [n for n in GATEWAY_FORM_FIELDS if n != "gateway_options"]
    return {**{n: credentials.get(n) for n in names}, **with_options(credentials, options, GATEWAY_OPTIONS)}


def _environment() -> tuple[str, ...]:
    return tuple(os.environ.get(name, "") for name in ENVIRONMENT)


# The key of the digest below: random per process, never stored or sent anywhere.
_DIGEST_KEY: Final = secrets.token_bytes(32)


def config_key(credentials: Mapping[str, Any]) -> bytes:
    """A name for the configuration `credentials` give, to cache what is built from it (sessions).

    What `from_credentials` reads is the gateway fields and `ENVIRONMENT`, so the key is a digest
    of exactly those: credentials that differ only in other fields (two customizable models on one
    gateway and consumer) get one key and so share one connection pool. The values themselves are
    not the key, because the secrets among them would then sit in the session cache for the life
    of the process, in any repr or heap dump of it (PRIVACY.md). The digest is keyed BLAKE2b with a
    random per-process key, so it cannot be checked against a guessed API key anywhere else, and
    128 bits make two configurations sharing a session by collision negligible. It is computed on
    every request, before the cache is asked, so it must not parse: loading a JWT key and signing
    a test token happen only when the cache misses.
    """
    material = repr((tuple(credentials.get(name) for name in GATEWAY_FIELDS), _environment())).encode()
    return hashlib.blake2b(material, key=_DIGEST_KEY, digest_size=16).digest()


def _timeouts(fields: Mapping[str, Any], from_environment: str, invocation_seconds: str) -> Timeouts:
    """Read timeout: the credential's own, else Dify's MAX_REQUEST_TIMEOUT, else 300 s; the
    invocation's deadline from AIGW_INVOCATION_TIMEOUT, else 540 s."""
    expected = f"must be a number of seconds between 0 and {_MAX_READ_TIMEOUT:g}"
    read = converted(fields, "timeout", float, _fits_read_timeout, expected)
    set_by = "credential field 'timeout'"
    if read is None:
        fallback = {"timeout": from_environment}
        read = converted(fallback, "timeout", float, _fits_read_timeout, f"is empty and MAX_REQUEST_TIMEOUT {expected}")
        set_by = "MAX_REQUEST_TIMEOUT"
    invocation = _invocation_timeout(invocation_seconds)
    if read is None:
        return Timeouts(invocation=invocation)
    return Timeouts(read, connect=min(CONNECT_TIMEOUT, read), read_set_by=set_by, invocation=invocation)


def _download_hosts(raw: str) -> tuple[str, ...]:
    """Comma-separated host names, addresses or networks (10.0.0.0/8), lower-cased."""
    return tuple(entry.strip().lower() for entry in raw.split(",") if entry.strip())


def _invocation_timeout(raw: str) -> float:
    if not raw.strip():
        return DEFAULT_INVOCATION_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not _fits_read_timeout(seconds):
        raise environment_error(
            INVOCATION_TIMEOUT_VARIABLE,
            f"must be a number of seconds between 0 and {_MAX_READ_TIMEOUT:g}, got {raw.strip()[:40]!r}.",
        )
    return seconds


def _fits_read_timeout(seconds: float) -> bool:
    return 0 < seconds <= _MAX_READ_TIMEOUT


def _credential_headers(auth: AuthConfig) -> tuple[str, ...]:
    # JwtConfig is told by elimination: importing it would load PyJWT before the first heartbeat.
    if isinstance(auth, HmacConfig):
        return ()  # HMAC's X-Ca-* headers are refused by their prefix
    if isinstance(auth, ApiKeyConfig) and auth.query_param is not None:
        return ()  # the key travels in the query
    return (auth.header,)


def _extra_headers(fields: Mapping[str, Any], auth: AuthConfig) -> tuple[tuple[str, str], ...]:
    """`extra_headers`, refusing the header the consumer's key or token travels in too."""
    try:
        return extra_headers(text(fields, "extra_headers"), _credential_headers(auth))
    except HeaderError as exc:
        raise credential_error("extra_headers", str(exc)) from None


def _switch(fields: Mapping[str, Any], name: str) -> bool:
    value = text(fields, name).lower() or "off"
    if value not in ("on", "off"):
        raise credential_error(name, f"unknown value {value[:16]!r}; expected on or off.")
    return value == "on"


def _retry_policy(fields: Mapping[str, Any]) -> RetryPolicy:
    retries = converted(fields, "max_retries", float, lambda n: 0 <= n <= 5, "must be a number from 0 to 5")
    if retries is not None and retries != int(retries):
        raise credential_error("max_retries", f"must be a whole number, got {retries:g}.")
    backoff = converted(
        fields, "retry_backoff", float, lambda s: 0 <= s <= MAX_WAIT, f"must be a number from 0 to {MAX_WAIT:g}"
    )
    return RetryPolicy(
        DEFAULT_MAX_RETRIES if retries is None else int(retries),
        DEFAULT_BACKOFF if backoff is None else backoff,
    )
