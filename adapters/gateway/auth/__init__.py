"""Gateway consumer authentication: one module per scheme the gateway's consumers can use.

- api_key.py: the key in a header (`Authorization: Bearer` by default) or a query parameter.
- jwt.py: a JWT signed locally with the consumer's key (JWK, JWK set or PEM), cached and renewed.
- hmac.py: the Higress `X-Ca-*` signature over the final method, headers, path, query and body.

Each module has a typed, frozen config parsed from the credential fields (`auth_config` picks the
scheme `auth_method` names) and an httpx.Auth built from it (`config.client_auth()`) that sees the
exact request on the wire. Parsing checks everything that can be checked offline and fails naming
the field at fault before any request is sent. The transport builds one auth object per gateway
configuration and shares it across threads and greenlets, so every object is immutable after
construction except the JWT token cache, which is locked.

Secrets stay in config fields left out of `repr()`; messages name fields, never secret values;
nothing here logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from adapters.credentials import credential_error, text
from adapters.gateway.auth.api_key import ApiKeyConfig, api_key_config
from adapters.gateway.auth.hmac import HmacConfig, hmac_config

if TYPE_CHECKING:
    from adapters.gateway.auth.jwt import JwtConfig

type AuthConfig = ApiKeyConfig | JwtConfig | HmacConfig  # evaluated only when read: JwtConfig is imported on use


def _jwt_config(fields: Mapping[str, Any]) -> JwtConfig:
    # Start-up: PyJWT and cryptography take ~50 ms to import, before the plugin's first heartbeat,
    # and only JWT consumers need them; they are imported with the first JWT configuration.
    from adapters.gateway.auth.jwt import jwt_config

    return jwt_config(fields)


_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], AuthConfig]]] = {
    "api_key": api_key_config,
    "jwt": _jwt_config,
    "hmac": hmac_config,
}


def auth_config(fields: Mapping[str, Any]) -> AuthConfig:
    """The config of the scheme `auth_method` selects (api_key when empty); reads `fields` only, never mutates it."""
    method = text(fields, "auth_method").lower() or "api_key"
    parser = _PARSERS.get(method)
    if parser is None:
        raise credential_error("auth_method", f"unknown value {method[:32]!r}; expected api_key, jwt or hmac.")
    return parser(fields)
