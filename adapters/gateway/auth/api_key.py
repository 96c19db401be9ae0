"""API key consumers: the key in a header (`Authorization: Bearer <key>` by default) or a query parameter.

Higress key-auth reads the configured header verbatim, so only `Authorization` gets a scheme word;
a custom header or a query parameter carries the bare key.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.credentials import header_name, header_value, text


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    # A tuple so that several keys (failover) fit later; today the form holds one and it is the one sent.
    keys: tuple[str, ...] = field(repr=False)
    header: str = "Authorization"
    query_param: str | None = None

    def client_auth(self) -> ApiKeyAuth:
        return ApiKeyAuth(self)


def api_key_config(fields: Mapping[str, Any]) -> ApiKeyConfig:
    key = header_value(fields, "api_key")
    query_param = text(fields, "api_key_query")
    if query_param:
        return ApiKeyConfig((key,), query_param=query_param)
    return ApiKeyConfig((key,), header_name(fields, "api_key_header", "Authorization"))


class ApiKeyAuth(httpx.Auth):
    """Puts the consumer's API key where the consumer is configured to carry it."""

    def __init__(self, config: ApiKeyConfig) -> None:
        self._key = config.keys[0]
        self._header = config.header
        self._query_param = config.query_param
        self._value = f"Bearer {self._key}" if config.header.lower() == "authorization" else self._key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._query_param:
            # copy_set_param replaces rather than appends: Higress answers 401 to two keys.
            request.url = request.url.copy_set_param(self._query_param, self._key)
        else:
            request.headers[self._header] = self._value
        yield request

    def __repr__(self) -> str:
        where = f"query={self._query_param!r}" if self._query_param else f"header={self._header!r}"
        return f"ApiKeyAuth({where})"
