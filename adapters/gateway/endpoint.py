"""The gateway endpoint and timeouts a credential set points at, checked once.

`endpoint_url` is the gateway base ending in `/v1`, optionally behind a base path
(`https://gw.example.com/team-a/v1`). Route paths in routes.yaml start with `/v1/...` or a
DashScope path such as `/api/v1/...`, so they are joined to the base with that `/v1` removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog.loader import Route

DEFAULT_READ_TIMEOUT = 300.0
CONNECT_TIMEOUT = 10.0
_ROUTE_SUFFIXES = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/rerank",
    "/reranks",
    "/audio/speech",
    "/audio/transcriptions",
)


def _read_timeout(credentials: Mapping[str, Any]) -> float:
    """Read timeout: the credential's own, else Dify's MAX_REQUEST_TIMEOUT, else 300 s."""
    raw = str(credentials.get("timeout") or "").strip()
    field = "timeout"
    if not raw:
        raw, field = os.environ.get("MAX_REQUEST_TIMEOUT", ""), "MAX_REQUEST_TIMEOUT"
    if not raw:
        return DEFAULT_READ_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86_400:
        where = "Credential field 'timeout'" if field == "timeout" else "Environment variable MAX_REQUEST_TIMEOUT"
        raise CredentialsValidateFailedError(f"{where} must be a number of seconds between 0 and 86400, got {raw!r}.")
    return value


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    read_timeout: float

    def url(self, route: Route) -> str:
        return self.base_url + route.path

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=min(CONNECT_TIMEOUT, self.read_timeout))


def endpoint_from_credentials(credentials: Mapping[str, Any]) -> Endpoint:
    raw = str(credentials.get("endpoint_url") or "").strip()
    if not raw:
        raise CredentialsValidateFailedError(
            "Credential field 'endpoint_url' is required, e.g. https://gw.example.com/v1."
        )
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CredentialsValidateFailedError(
            f"Credential field 'endpoint_url' must be an http:// or https:// URL with a host, got {raw!r}."
        )
    if parts.username or parts.password:
        raise CredentialsValidateFailedError(
            "Credential field 'endpoint_url' must not carry a user name or password; use the auth fields instead."
        )
    if parts.query or parts.fragment:
        raise CredentialsValidateFailedError(
            "Credential field 'endpoint_url' must not have a query string or fragment."
        )
    path = parts.path.rstrip("/")
    if path.endswith(_ROUTE_SUFFIXES):
        raise CredentialsValidateFailedError(
            f"Credential field 'endpoint_url' should be the base URL ending in /v1, not a full route ({parts.path})."
        )
    path = path.removesuffix("/v1")
    return Endpoint(f"{parts.scheme}://{parts.netloc}{path}", _read_timeout(credentials))
