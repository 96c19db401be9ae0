"""JWT consumer auth, following Higress `wasm-go/extensions/jwt-auth` (handler/verify.go).

Per consumer, in config order: take the token from the consumer's header (it must start
with the configured prefix, else it counts as missing), verify the signature with the key
whose `kid` matches (else the first key), compare `iss` when an issuer is configured, then
check exp/nbf/iat when present with the clock skew (go-jose ValidateWithLeeway). The
commercial gateway additionally identifies the consumer by a payload claim (default `uid`);
a token whose claim does not match is treated as "this consumer is not allowed".

The first consumer that accepts the token wins. When all fail, Higress answers with the
single allowed consumer's own error if exactly one consumer is allowed, else with 403
"JWT token not allow." The emulator authorises every configured consumer on every route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import PyJWTError

from .denial import Denial
from .wire import Headers

__all__ = ["JwtConsumer", "JwtVerifier", "looks_like_jwt"]

_REALM = (("WWW-Authenticate", "JWT realm=MSE Gateway"),)
MISSING = Denial(401, "Request denied by JWT Auth check. JWT is missing.", _REALM)
EXPIRED = Denial(401, "Request denied by JWT Auth check. JWT is expired.", _REALM)
VERIFICATION_FAILS = Denial(401, "Request denied by JWT Auth check. JWT verification fails", _REALM)
UNAUTHORIZED = Denial(403, "Request denied by JWT Auth check. Unauthorized consumer.", _REALM)
NOT_ALLOW = Denial(403, "Request denied by JWT Auth check. JWT token not allow.", _REALM)

# Algorithms go-jose accepts for JWS; "none" is never accepted.
_ALGORITHMS = frozenset(
    {
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)


@dataclass(frozen=True, slots=True)
class JwtConsumer:
    name: str
    jwks: Mapping[str, Any]
    issuer: str | None
    claim: str
    claim_value: str | None
    header: str
    prefix: str


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and " " not in value


class JwtVerifier:
    def __init__(self, consumers: Sequence[JwtConsumer], *, clock_skew: float, clock: Callable[[], float]) -> None:
        self._consumers = list(consumers)
        self._skew = clock_skew
        self._clock = clock

    def token_for(self, headers: Headers, consumer: JwtConsumer) -> str:
        value = headers.get(consumer.header, "")
        if not value or not value.startswith(consumer.prefix):
            return ""
        return value[len(consumer.prefix) :]

    def carries_token(self, headers: Headers) -> bool:
        """Used to pick the scheme when several are configured."""
        return any(looks_like_jwt(self.token_for(headers, c)) for c in self._consumers)

    def verify(self, headers: Headers) -> str | Denial:
        failures: list[Denial] = []
        for consumer in self._consumers:
            outcome = self._verify_one(headers, consumer)
            if outcome is None:
                return consumer.name
            failures.append(outcome)
        if len(self._consumers) == 1:
            return failures[0]
        return NOT_ALLOW

    def _verify_one(self, headers: Headers, consumer: JwtConsumer) -> Denial | None:
        token = self.token_for(headers, consumer)
        if not token:
            return MISSING
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in _ALGORITHMS:
                return VERIFICATION_FAILS
            key = _select_key(consumer.jwks, header.get("kid"), alg)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                # go-jose checks only the signature here; times and issuer are checked below.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except (PyJWTError, ValueError, KeyError, TypeError):  # any unusable token or key
            return VERIFICATION_FAILS
        if consumer.issuer is not None and claims.get("iss") != consumer.issuer:
            return VERIFICATION_FAILS
        if (denial := self._check_times(claims)) is not None:
            return denial
        if consumer.claim_value is not None and claims.get(consumer.claim) != consumer.claim_value:
            return UNAUTHORIZED
        return None

    def _check_times(self, claims: Mapping[str, Any]) -> Denial | None:
        now = self._clock()
        times: dict[str, float] = {}
        for name in ("exp", "nbf", "iat"):
            if name in claims:
                value = claims[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return VERIFICATION_FAILS  # go-jose fails to unmarshal a non-numeric date
                times[name] = float(value)
        if "nbf" in times and now + self._skew < times["nbf"]:
            return EXPIRED
        if "exp" in times and now - self._skew > times["exp"]:
            return EXPIRED
        if "iat" in times and now + self._skew < times["iat"]:
            return EXPIRED
        return None


def _select_key(jwks: Mapping[str, Any], kid: object, alg: str) -> Any:
    """The key whose kid matches, else the first key (Higress); HS* secrets are the decoded `k`."""
    keys = list(jwks.get("keys", []))
    if not keys:
        raise KeyError("empty JWKS")
    chosen = next((k for k in keys if kid and k.get("kid") == kid), keys[0])
    return jwt.PyJWK(dict(chosen), algorithm=alg).key
