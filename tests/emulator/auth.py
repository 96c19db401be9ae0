"""Consumer authentication: which scheme applies to a request, and the key-auth scheme itself.

Key auth follows Higress `wasm-go/extensions/key-auth`:
- Header values are taken VERBATIM; nothing strips "Bearer ". A consumer whose key lives in
  `Authorization` is therefore matched against the exact text "Bearer <key>" (how the
  commercial console's "Authorization: Bearer <key>" source behaves, and what OpenAI SDKs
  send). A custom header (e.g. X-API-Key) or query parameter carries the bare key.
- Every configured source (the union of all consumers' headers/query names) is read; more
  than one non-empty value gives 401 "Muti Key ..." (sic, Higress's spelling), none gives
  401 "No Key ...", an unknown value 403 "Unauthorized consumer.". Each consumer's key is
  accepted only from that consumer's own source (the commercial per-consumer setting).

When consumers use different schemes, the emulator picks one per request: HMAC if
X-Ca-Key is present, else JWT if a consumer's JWT header carries a token, else API key;
a request carrying nothing is rejected by the highest-priority configured plugin
(jwt-auth 340 > hmac-auth 330 > key-auth 310).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from .denial import Denial
from .hmac_auth import HmacCredential, HmacVerifier
from .jwt_auth import JwtConsumer, JwtVerifier
from .wire import Request

__all__ = ["AuthMode", "Authenticator", "Consumer"]

AuthMode = Literal["auto", "api_key", "jwt", "hmac", "none"]

_KEY_REALM = (("WWW-Authenticate", "Key realm=MSE Gateway"),)
NO_KEY = Denial(401, "Request denied by Key Auth check. No Key Authentication information found.", _KEY_REALM)
MULTI_KEY = Denial(401, "Request denied by Key Auth check. Muti Key Authentication information found.", _KEY_REALM)
UNKNOWN_KEY = Denial(403, "Request denied by Key Auth check. Unauthorized consumer.", _KEY_REALM)


@dataclass(frozen=True)
class Consumer:
    """One gateway consumer and its credentials (any subset of the three schemes).

    api_key: with api_key_header="Authorization" (default) the client must send exactly
    "Authorization: <api_key_prefix> <api_key>" ("Bearer", the AI Gateway console's credential
    source; "" for open-source Higress key-auth, which compares the header verbatim, so the bare
    key); with any other header the bare key; with api_key_query set, the key comes from that
    query parameter instead of a header.
    jwt_jwks: a JWK set {"keys": [...]}; HS* keys are {"kty":"oct","k":<base64url secret>}.
    """

    name: str
    api_key: str | None = None
    api_key_header: str = "Authorization"
    api_key_prefix: str = "Bearer"
    api_key_query: str | None = None
    jwt_jwks: Mapping[str, Any] | None = None
    jwt_issuer: str | None = None
    jwt_claim: str = "uid"
    jwt_claim_value: str | None = None
    jwt_header: str = "Authorization"
    jwt_prefix: str = "Bearer "
    hmac_access_key: str | None = None
    hmac_secret_key: str | None = None

    @property
    def key_source(self) -> tuple[str, str]:
        """("query", name) or ("header", lowercased name)."""
        if self.api_key_query:
            return ("query", self.api_key_query)
        return ("header", self.api_key_header.lower())

    @property
    def expected_key_value(self) -> str:
        assert self.api_key is not None
        if self.key_source == ("header", "authorization") and self.api_key_prefix:
            return f"{self.api_key_prefix} {self.api_key}"
        return self.api_key


class KeyAuth:
    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self._by_credential: dict[tuple[tuple[str, str], str], str] = {}
        self._sources: list[tuple[str, str]] = []
        for c in consumers:
            self._by_credential.setdefault((c.key_source, c.expected_key_value), c.name)
            if c.key_source not in self._sources:
                self._sources.append(c.key_source)

    def carries_key(self, request: Request) -> bool:
        return bool(self._tokens(request))

    def _tokens(self, request: Request) -> list[tuple[tuple[str, str], str]]:
        tokens: list[tuple[tuple[str, str], str]] = []
        query: list[tuple[str, str]] | None = None
        for source in self._sources:
            kind, name = source
            if kind == "header":
                value = request.headers.get(name, "")
                if value:
                    tokens.append((source, value))
            else:
                if query is None:  # Go's url.Query(): '+' is a space, every repeat counts
                    query = parse_qsl(request.query, keep_blank_values=True)
                tokens.extend((source, v) for k, v in query if k == name)
        return tokens

    def verify(self, request: Request) -> str | Denial:
        tokens = self._tokens(request)
        if len(tokens) > 1:
            return MULTI_KEY
        if not tokens:
            return NO_KEY
        return self._by_credential.get(tokens[0], UNKNOWN_KEY)


class Authenticator:
    """Decides the consumer of a request, or the Denial the gateway would send."""

    def __init__(
        self,
        consumers: Sequence[Consumer],
        *,
        mode: AuthMode,
        hmac_date_offset: float | None,
        jwt_clock_skew: float,
        clock: Callable[[], float],
    ) -> None:
        use = {"api_key", "jwt", "hmac"} if mode == "auto" else {mode}
        key_consumers = [c for c in consumers if c.api_key is not None and "api_key" in use]
        jwt_consumers = [
            JwtConsumer(c.name, c.jwt_jwks, c.jwt_issuer, c.jwt_claim, c.jwt_claim_value, c.jwt_header, c.jwt_prefix)
            for c in consumers
            if c.jwt_jwks is not None and "jwt" in use
        ]
        hmac_credentials = {
            c.hmac_access_key: HmacCredential(c.name, c.hmac_secret_key or "")
            for c in consumers
            if c.hmac_access_key is not None and "hmac" in use
        }
        self.key = KeyAuth(key_consumers) if key_consumers else None
        self.jwt = JwtVerifier(jwt_consumers, clock_skew=jwt_clock_skew, clock=clock) if jwt_consumers else None
        self.hmac = (
            HmacVerifier(hmac_credentials, date_offset=hmac_date_offset, clock=clock) if hmac_credentials else None
        )
        if mode not in ("auto", "none") and not (self.key or self.jwt or self.hmac):
            raise ValueError(f"auth={mode!r} but no consumer has credentials for it")

    @property
    def enabled(self) -> bool:
        return bool(self.key or self.jwt or self.hmac)

    def authenticate(self, request: Request) -> str | Denial | None:
        """Consumer name; None when auth is off; a Denial when rejected."""
        if not self.enabled:
            return None
        if self.hmac and request.headers.get("x-ca-key"):
            return self.hmac.verify(request)
        if self.jwt and self.jwt.carries_token(request.headers):
            return self.jwt.verify(request.headers)
        if self.key and self.key.carries_key(request):
            return self.key.verify(request)
        # Nothing recognisable: the first plugin in the filter chain rejects it.
        if self.jwt:
            return self.jwt.verify(request.headers)
        if self.hmac:
            return self.hmac.verify(request)
        assert self.key is not None
        return self.key.verify(request)
