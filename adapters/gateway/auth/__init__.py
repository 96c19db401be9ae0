"""Gateway consumer authentication (being split into one module per scheme)."""

from adapters.gateway.auth.jwt import (
    HMAC_SIGNED_HEADERS,
    ApiKeyAuth,
    HmacAuth,
    JwtAuth,
    auth_from_credentials,
    content_md5,
    hmac_signature,
    parse_params,
    string_to_sign,
)

__all__ = [
    "HMAC_SIGNED_HEADERS",
    "ApiKeyAuth",
    "HmacAuth",
    "JwtAuth",
    "auth_from_credentials",
    "content_md5",
    "hmac_signature",
    "parse_params",
    "string_to_sign",
]
