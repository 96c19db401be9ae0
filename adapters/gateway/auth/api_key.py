"""API key consumers: the key in a header (`Authorization: Bearer <key>` by default) or a query parameter.

The AI Gateway console's `Authorization: Bearer` credential source expects the scheme word before
the key; open-source Higress key-auth compares the configured header's value verbatim
(alibaba/higress `plugins/wasm-go/extensions/key-auth/main.go`), so `api_key_prefix` says what goes
in front of the key: `Bearer` by default on `Authorization`, nothing on a custom header, and `none`
for the key alone. A key pasted with its scheme word (`Bearer sk-...`) is sent with it once.

`api_key` may hold several keys of the consumer (or of several consumers), separated by commas or
line breaks (Dify's secret inputs are single-line): each gets an auth of its own
(`client_auths`), and the transport moves to the next when one is rested (adapters/gateway/failover.py).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from adapters.credentials import (
    NO_PREFIX,
    PRINTABLE_ASCII,
    credential_error,
    header_name,
    is_token,
    required_text,
    text,
)

DEFAULT_PREFIX: Final = "Bearer"
# Between several keys; a key holds neither (a space may: "Bearer sk-...").
_KEY_SEPARATORS: Final = re.compile(r"[,\r\n]+")


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    keys: tuple[str, ...] = field(repr=False)  # in the order given; the first is used while it works
    header: str = "Authorization"
    query_param: str | None = None
    prefix: str = ""  # before the key in the header, with one space; empty: the key alone

    def client_auth(self) -> ApiKeyAuth:
        return ApiKeyAuth(self)

    def client_auths(self) -> tuple[ApiKeyAuth, ...]:
        """One auth per key, in order: the credential sets failover moves between."""
        return tuple(ApiKeyAuth(self, index) for index in range(len(self.keys)))

    def secrets(self, request: httpx.Request | None = None) -> tuple[tuple[str, str], ...]:
        """(field, value) of each value a report must not show (adapters/gateway/redaction.py)."""
        return tuple(("api_key", key) for key in self.keys)


def api_key_config(fields: Mapping[str, Any]) -> ApiKeyConfig:
    keys = _keys(fields)
    query_param = text(fields, "api_key_query")
    if query_param:
        return ApiKeyConfig(keys, query_param=query_param)
    header = header_name(fields, "api_key_header", "Authorization")
    prefix = _prefix(fields, header)
    if prefix:  # a key pasted with its scheme word: send that word once
        keys = tuple(k[len(prefix) + 1 :].strip() if k[: len(prefix) + 1].lower() == f"{prefix.lower()} " else k
                     for k in keys)  # fmt: skip
    return ApiKeyConfig(keys, header, prefix=prefix)


def _keys(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of `api_key`, each checked to travel in a header; a problem names a key by its place,
    never by its value."""
    keys = [key.strip() for key in _KEY_SEPARATORS.split(required_text(fields, "api_key")) if key.strip()]
    if not keys:
        raise credential_error("api_key", "holds no key, only separators.")
    for number, key in enumerate(keys, start=1):
        which = f"key {number} of {len(keys)} " if len(keys) > 1 else ""
        if not PRINTABLE_ASCII.fullmatch(key):
            raise credential_error("api_key", f"{which}contains characters that cannot be sent in an HTTP header.")
        if key in keys[: number - 1]:
            raise credential_error("api_key", f"key {number} repeats key {keys.index(key) + 1}.")
    return tuple(keys)


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
    """Puts one of the consumer's API keys (number `index` of `config.keys`) where the consumer is
    configured to carry it."""

    def __init__(self, config: ApiKeyConfig, index: int = 0) -> None:
        self._key = config.keys[index]
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
