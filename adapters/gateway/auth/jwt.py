"""JWT consumers: a token signed locally with the consumer's key (JWK, JWK set or PEM), cached and renewed.

Higress jwt-auth checks the signature with the consumer's public JWKS (or the shared secret of an
`oct` key), the identity claim (`uid` unless configured) and the time claims. Everything that can be
checked offline is checked while parsing, including one throwaway signature, so a key that cannot
sign fails when the credentials are saved, naming `jwt_jwks` or `jwt_algorithm`, never quoting the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from dify_plugin.errors.model import CredentialsValidateFailedError
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from adapters.credentials import NO_PREFIX, PRINTABLE_ASCII, credential_error, header_name, required_text, text

Clock = Callable[[], float]

_JWT_ALGORITHMS: Final = (
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)  # fmt: skip
_ALGORITHM_BY_UPPER: Final = {alg.upper(): alg for alg in _JWT_ALGORITHMS}
_EC_CURVE_FOR_ALG: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_EC_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_OKP_CURVES: Final = frozenset({"Ed25519", "Ed448"})
# No gateway maximum is documented; 7 days is the cap the credential form has always used.
_MAX_JWT_LIFETIME: Final = 7 * 24 * 3600
_DEFAULT_JWT_LIFETIME: Final = 3600
_RESERVED_CLAIMS: Final = frozenset({"exp", "nbf", "iat"})
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+={0,2}")

SigningKey = bytes | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class JwtConfig:
    key: SigningKey = field(repr=False)
    algorithm: str
    consumer_id: str = field(repr=False)
    consumer_claim: str = "uid"
    issuer: str | None = None
    kid: str | None = None
    lifetime: int = _DEFAULT_JWT_LIFETIME
    header: str = "Authorization"
    prefix: str = "Bearer"  # empty: the token alone

    def client_auth(self) -> JwtAuth:
        return JwtAuth(self)

    def client_auths(self) -> tuple[JwtAuth, ...]:
        """The one credential set of this scheme: several are not supported, endpoints still fail over."""
        return (self.client_auth(),)

    def secrets(self, request: httpx.Request | None = None) -> tuple[tuple[str, str], ...]:
        """(field, value) of each value a report must not show (adapters/gateway/redaction.py): the
        token `request` carried, and an HMAC key (an `oct` JWK) when it is text; asymmetric keys
        never appear as text."""
        found: list[tuple[str, str]] = []
        sent = request.headers.get(self.header, "") if request is not None else ""
        if sent:
            found.append(("jwt", sent.removeprefix(f"{self.prefix} ") if self.prefix else sent))
        if isinstance(self.key, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                found.append(("jwt_jwks", self.key.decode("utf-8")))
        return tuple(found)


class JwtAuth(httpx.Auth):
    """A locally signed JWT carrying the consumer identity claim, cached until close to expiry."""

    def __init__(self, config: JwtConfig, *, clock: Clock = time.time) -> None:
        self._key = config.key
        self._algorithm = config.algorithm
        self._consumer_id = config.consumer_id
        self._consumer_claim = config.consumer_claim
        self._issuer = config.issuer
        self._kid = config.kid
        self._lifetime = config.lifetime
        self._header = config.header
        self._prefix = config.prefix
        self._clock = clock
        # Renew when less than 10% of the lifetime (at least 60 s) is left, so a token never
        # expires in flight; capped at half the lifetime so very short lifetimes still get reuse.
        self._renew_margin = min(max(self._lifetime * 0.1, 60.0), self._lifetime / 2)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at = 0
        self._renew_at = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current_token()
        # Exactly one space: Higress strips the configured value_prefix ("Bearer ") literally.
        request.headers[self._header] = f"{self._prefix} {token}" if self._prefix else token
        yield request

    def _current_token(self) -> str:
        now = self._clock()
        with self._lock:
            # A clock that went backwards would leave iat/nbf in the future: re-issue then too.
            if self._token is None or now >= self._renew_at or now < self._issued_at:
                self._token = self.issue(now)
                self._issued_at = int(now)
                self._renew_at = self._issued_at + self._lifetime - self._renew_margin
            return self._token

    def claims(self, now: float) -> dict[str, Any]:
        """The payload for a token issued at `now` (epoch seconds)."""
        issued = int(now)
        payload: dict[str, Any] = {self._consumer_claim: self._consumer_id}
        if self._issuer:
            payload["iss"] = self._issuer
        payload.update(iat=issued, nbf=issued, exp=issued + self._lifetime)
        return payload

    def issue(self, now: float) -> str:
        """Sign a fresh token for `now`, bypassing the cache."""
        headers = {"kid": self._kid} if self._kid else None
        return jwt.encode(self.claims(now), self._key, algorithm=self._algorithm, headers=headers)

    def __repr__(self) -> str:
        kid = f", kid={self._kid!r}" if self._kid else ""
        return f"JwtAuth(algorithm={self._algorithm!r}{kid}, claim={self._consumer_claim!r}, header={self._header!r})"


def jwt_config(fields: Mapping[str, Any]) -> JwtConfig:
    jwk, pem_key = _parse_key_material(required_text(fields, "jwt_jwks"))
    algorithm = _jwt_algorithm(fields, jwk, pem_key)
    key = _jwk_signing_key(jwk, algorithm) if jwk is not None else _fitting_key(pem_key, algorithm)
    consumer_claim = text(fields, "jwt_consumer_claim") or "uid"
    issuer = text(fields, "jwt_issuer") or None
    _check_claim_name(consumer_claim, issuer)
    kid = jwk.get("kid") if jwk is not None else None
    config = JwtConfig(
        key,
        algorithm,
        required_text(fields, "jwt_consumer_id"),
        consumer_claim=consumer_claim,
        issuer=issuer,
        kid=kid if isinstance(kid, str) and kid else None,
        lifetime=_jwt_lifetime(fields),
        header=header_name(fields, "jwt_header_name", "Authorization"),
        prefix=_jwt_prefix(fields),
    )
    _check_can_sign(config)
    return config


def _parse_key_material(raw: str) -> tuple[dict[str, Any] | None, PrivateKeyTypes | None]:
    """(JWK, None) for a JWK or JWK set (first key, as Higress falls back to), or (None, PEM key)."""
    if raw.startswith("-----BEGIN"):
        return None, _load_pem(raw)
    try:
        document = json.loads(raw)
    except ValueError:
        # `from None`: the decode error carries the whole secret document in its `.doc`.
        raise credential_error("jwt_jwks", "is neither valid JSON (a JWK or JWK set) nor a PEM private key.") from None
    if isinstance(document, dict) and "keys" in document:
        keys = document["keys"]
        if not isinstance(keys, list) or not keys or not isinstance(keys[0], dict):
            raise credential_error("jwt_jwks", "the JWK set has no keys; its 'keys' must be a non-empty list of JWKs.")
        return keys[0], None
    if isinstance(document, dict) and "kty" in document:
        return document, None
    raise credential_error("jwt_jwks", "must be a JWK (with 'kty'), a JWK set (with 'keys') or a PEM private key.")


def _load_pem(raw: str) -> PrivateKeyTypes:
    data = raw.encode("ascii", "replace")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise credential_error("jwt_jwks", "the PEM private key is encrypted; paste an unencrypted key.") from None
    except (ValueError, UnsupportedAlgorithm):
        public = _is_public_pem(data)
    # Raised outside the handler so the cryptography error (and its context) is not attached.
    if public:
        raise credential_error("jwt_jwks", "holds a public key; signing needs the private key.")
    raise credential_error("jwt_jwks", "could not be read as a PEM private key.")


def _is_public_pem(data: bytes) -> bool:
    try:
        serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _jwt_algorithm(fields: Mapping[str, Any], jwk: dict[str, Any] | None, pem_key: PrivateKeyTypes | None) -> str:
    """The configured algorithm, else the key's own `alg`, else the usual one for the key type."""
    configured = text(fields, "jwt_algorithm")
    declared = jwk.get("alg") if jwk is not None else None
    if configured:
        algorithm = _ALGORITHM_BY_UPPER.get(configured.upper())
        if algorithm is None:
            raise credential_error(
                "jwt_algorithm",
                f"{configured[:32]!r} is not supported; use one of {', '.join(_JWT_ALGORITHMS)}.",
            )
        if isinstance(declared, str) and declared and declared != algorithm:
            raise credential_error(
                "jwt_algorithm",
                f"{algorithm} does not match the alg {declared[:32]!r} declared by the key in 'jwt_jwks'.",
            )
        return algorithm
    if isinstance(declared, str) and declared in _JWT_ALGORITHMS:
        return declared
    inferred = _default_algorithm(jwk, pem_key)
    if inferred is None:
        raise credential_error("jwt_algorithm", "is required: it cannot be inferred from the key in 'jwt_jwks'.")
    return inferred


def _default_algorithm(jwk: dict[str, Any] | None, pem_key: PrivateKeyTypes | None) -> str | None:
    if jwk is not None:
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if kty == "oct":
            return "HS256"
        if kty == "RSA":
            return "RS256"
        if kty == "EC":
            return next((alg for alg, c in _EC_CURVE_FOR_ALG.items() if c == crv), None)
        if kty == "OKP" and crv in _OKP_CURVES:
            return "EdDSA"
        return None
    if isinstance(pem_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(pem_key, ec.EllipticCurvePrivateKey):
        curve = _EC_CURVE_NAMES.get(pem_key.curve.name)
        return next((alg for alg, c in _EC_CURVE_FOR_ALG.items() if c == curve), None)
    if isinstance(pem_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "EdDSA"
    return None


def _describe_jwk(jwk: dict[str, Any]) -> str:
    kty, crv = str(jwk.get("kty"))[:16], jwk.get("crv")
    return f"a kty {kty!r} key" + (f" on curve {str(crv)[:16]!r}" if crv else "")


def _jwk_mismatch(jwk: dict[str, Any], algorithm: str) -> CredentialsValidateFailedError:
    return credential_error(
        "jwt_jwks", f"holds {_describe_jwk(jwk)}, which cannot sign {algorithm} (see 'jwt_algorithm')."
    )


def _jwk_signing_key(jwk: dict[str, Any], algorithm: str) -> SigningKey:
    kty = jwk.get("kty")
    if algorithm.startswith("HS"):
        if kty != "oct":
            raise _jwk_mismatch(jwk, algorithm)
        return _oct_secret(jwk)
    if algorithm[:2] in ("RS", "PS"):
        expected_kty, loader = "RSA", RSAAlgorithm.from_jwk
    elif algorithm.startswith("ES"):
        expected_kty, loader = "EC", ECAlgorithm.from_jwk
        if kty == "EC" and jwk.get("crv") != _EC_CURVE_FOR_ALG[algorithm]:
            raise _jwk_mismatch(jwk, algorithm)
    else:
        expected_kty, loader = "OKP", OKPAlgorithm.from_jwk
        if kty == "OKP" and jwk.get("crv") not in _OKP_CURVES:
            raise _jwk_mismatch(jwk, algorithm)
    if kty != expected_kty:
        raise _jwk_mismatch(jwk, algorithm)
    if "d" not in jwk:
        raise credential_error("jwt_jwks", "holds a public key only; signing needs the private JWK (with 'd').")
    try:
        key = loader(jwk)
    except (jwt.PyJWTError, ValueError, KeyError, TypeError, UnsupportedAlgorithm):
        # `from None`: library errors and their context may describe the key material.
        raise credential_error("jwt_jwks", f"the {kty} private JWK could not be loaded; check its members.") from None
    return _fitting_key(key, algorithm)


def _oct_secret(jwk: dict[str, Any]) -> bytes:
    k = jwk.get("k")
    if not isinstance(k, str) or not k:
        raise credential_error("jwt_jwks", "the symmetric (oct) JWK has no 'k' member.")
    # Higress uses the base64url-decoded `k` as the HMAC secret. Python's decoder silently skips
    # stray characters, so check the alphabet first rather than sign with a truncated secret.
    if not _BASE64URL.fullmatch(k):
        raise credential_error("jwt_jwks", "the symmetric (oct) JWK's 'k' is not valid base64url.")
    try:
        secret = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))  # JWKs omit the padding
    except (binascii.Error, ValueError):
        raise credential_error("jwt_jwks", "the symmetric (oct) JWK's 'k' is not valid base64url.") from None
    if not secret:
        raise credential_error("jwt_jwks", "the symmetric (oct) JWK's 'k' decodes to an empty secret.")
    return secret


def _fitting_key(key: PrivateKeyTypes | None, algorithm: str) -> SigningKey:
    """Check a loaded private key fits the algorithm's family (and curve, for ES*)."""
    if algorithm.startswith("HS"):
        raise credential_error(
            "jwt_jwks", f"{algorithm} needs a symmetric JWK (kty 'oct'), not a PEM key (see 'jwt_algorithm')."
        )
    if algorithm[:2] in ("RS", "PS") and isinstance(key, rsa.RSAPrivateKey):
        return key
    if (
        algorithm.startswith("ES")
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and _EC_CURVE_NAMES.get(key.curve.name) == _EC_CURVE_FOR_ALG[algorithm]
    ):
        return key
    if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key
    raise credential_error(
        "jwt_jwks", f"holds {_describe_key(key)}, which cannot sign {algorithm} (see 'jwt_algorithm')."
    )


def _describe_key(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "an Ed25519/Ed448 key"
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "a public key only"
    return "an unsupported key type"


def _check_claim_name(claim: str, issuer: str | None) -> None:
    if claim in _RESERVED_CLAIMS:
        raise credential_error(
            "jwt_consumer_claim", f"{claim!r} is a time claim the plugin sets itself; use e.g. 'uid'."
        )
    if claim == "iss" and issuer:
        raise credential_error("jwt_consumer_claim", "'iss' conflicts with 'jwt_issuer'; leave one of them empty.")


def _jwt_lifetime(fields: Mapping[str, Any]) -> int:
    raw = fields.get("jwt_expiration")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return _DEFAULT_JWT_LIFETIME
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and re.fullmatch(r"\d+(\.0*)?", raw.strip()):
        value = int(raw.strip().split(".")[0])
    if value is None:
        raise credential_error("jwt_expiration", "must be a whole number of seconds.")
    if not 1 <= value <= _MAX_JWT_LIFETIME:
        raise credential_error("jwt_expiration", f"must be between 1 and {_MAX_JWT_LIFETIME} seconds (7 days).")
    return value


def _jwt_prefix(fields: Mapping[str, Any]) -> str:
    # Absent means the gateway default "Bearer"; `none` (Dify stores an emptied field as absent) or an
    # explicitly empty value means "token only".
    if fields.get("jwt_header_prefix") is None:
        return "Bearer"
    prefix = text(fields, "jwt_header_prefix")
    if prefix.lower() == NO_PREFIX:
        return ""
    if not PRINTABLE_ASCII.fullmatch(prefix):
        raise credential_error("jwt_header_prefix", "contains characters that cannot be sent in an HTTP header.")
    return prefix


def _check_can_sign(config: JwtConfig) -> None:
    """Sign one throwaway token so library-level key problems surface now, not on the first call."""
    try:
        JwtAuth(config).issue(time.time())
    except Exception:  # noqa: BLE001 - whatever the library raised may describe the key; keep it out
        raise credential_error("jwt_jwks", "the key could not sign a token with the selected algorithm.") from None
