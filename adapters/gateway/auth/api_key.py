"""API key consumers: the key in a header (`Authorization: Bearer <key>` by default) or a query parameter.

The AI Gateway console's `Authorization: Bearer` credential source expects the scheme word before
the key; open-source Higress key-auth compares the configured header's value verbatim
(alibaba/higress `plugins/wasm-go/extensions/key-auth/main.go`), so `api_key_prefix` says what goes
in front of the key: `Bearer` by default on `Authorization`, nothing on a custom header, and `none`
for the key alone. A key pasted with its scheme word (`Bearer sk-...`) is sent with it once.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from adapters.credentials import NO_PREFIX, credential_error, header_name, header_value, is_token, text

DEFAULT_PREFIX: Final = "Bearer"


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    # A tuple so that several keys (failover) fit later; today the form holds one and it is the one sent.
    keys: tuple[str, ...] = field(repr=False)
    header: str = "Authorization"
    query_param: str | None = None
    prefix: str = ""  # before the key in the header, with one space; empty: the key alone

    def client_auth(self) -> ApiKeyAuth:
        return ApiKeyAuth(self)

    def secrets(self, request: httpx.Request | None = None) -> tuple[tuple[str, str], ...]:
        """(field, value) of each value a report must not show (adapters/gateway/redaction.py)."""
        return tuple(("api_key", key) for key in self.keys)


def api_key_config(fields: Mapping[str, Any]) -> ApiKeyConfig:
    key = header_value(fields, "api_key")
    query_param = text(fields, "api_key_query")
    if query_param:
        return ApiKeyConfig((key,), query_param=query_param)
    header = header_name(fields, "api_key_header", "Authorization")
    prefix = _prefix(fields, header)
    if prefix and key[: len(prefix) + 1].lower() == f"{prefix.lower()} ":
        key = key[len(prefix) + 1 :].strip()  # pasted with its scheme word: send that word once
    return ApiKeyConfig((key,), header, prefix=prefix)


def _prefix(fields: Mapping[str, Any], header: str) -> str:
    """`api_key_prefix` as given; unset: Bearer on Authorization, nothing on a custom header."""
    if fields.get("api_key_prefix") is None:
        return DEFAULT_PREFIX if header.lower() == "authorization" else ""
    prefix = text(fields, "api_key_prefix")
    if not prefix or prefix.lower() == NO_PREFIX:
        return ""
    if not is_token(prefix):
        raise credential_error(
            "api_key_prefix", f"must be one word such as {DEFAULT_PREFIX}, or {NO_PREFIX} to send the key alone."
        )
    return prefix


class ApiKeyAuth(httpx.Auth):
    """Puts the consumer's API key where the consumer is configured to carry it."""

    def __init__(self, config: ApiKeyConfig) -> None:
        self._key = config.keys[0]
        self._header = config.header
        self._query_param = config.query_param
        self._value = f"{config.prefix} {self._key}" if config.prefix else self._key

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
