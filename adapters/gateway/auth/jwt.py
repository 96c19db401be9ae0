"""Gateway consumer authentication as httpx.Auth objects that see the exact request on the wire.

One class per consumer auth scheme the gateway offers (gateway-protocol.md §2):

- `ApiKeyAuth`: the consumer's key in a header (`Authorization: Bearer` by default) or a query parameter.
- `JwtAuth`: a JWT signed locally with the consumer's key (JWK, JWK set or PEM), cached and renewed.
- `HmacAuth`: the Alibaba/Higress `X-Ca-*` signature over the final method, headers, path, query and body.

`auth_from_credentials` parses Dify's credentials once, validates everything that can be checked
offline, and raises `CredentialsValidateFailedError` naming the field at fault before any request is
sent. The transport builds one auth object per credential set and shares it across threads and
greenlets, so every object is immutable after construction except the JWT cache, which is locked.

Secrets never leave this module except on the wire: messages name fields, never values; `repr()`
shows the scheme and non-secret settings only; nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from email.utils import formatdate
from typing import Any, Final
from urllib.parse import unquote

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from dify_plugin.errors.model import CredentialsValidateFailedError
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

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

Clock = Callable[[], float]

# ---------------------------------------------------------------------------------------------
# Credential parsing helpers
# ---------------------------------------------------------------------------------------------

# RFC 9110 token characters: anything else cannot be a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header values we build from user input must be printable ASCII: h11 rejects control characters
# with an error that quotes the whole value, which would put a secret into an exception message.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
# Headers that carry HTTP framing or routing; putting a credential there would break the request.
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)


def _fail(field: str, problem: str) -> CredentialsValidateFailedError:
    return CredentialsValidateFailedError(f"Credential field '{field}': {problem}")


def _text(credentials: Mapping[str, Any], field: str) -> str:
    """The field as a stripped string; missing and None read as empty."""
    value = credentials.get(field)
    return "" if value is None else str(value).strip()


def _required(credentials: Mapping[str, Any], field: str) -> str:
    value = _text(credentials, field)
    if not value:
        raise _fail(field, "is required but empty.")
    return value


def _header_safe(credentials: Mapping[str, Any], field: str) -> str:
    """A required value that will travel in a header; checked so httpx/h11 never echo it back."""
    value = _required(credentials, field)
    if not _PRINTABLE_ASCII.fullmatch(value):
        raise _fail(field, "contains characters that cannot be sent in an HTTP header.")
    return value


def _header_name(credentials: Mapping[str, Any], field: str, default: str) -> str:
    name = _text(credentials, field) or default
    if not _HEADER_NAME.fullmatch(name):
        raise _fail(field, f"{name[:64]!r} is not a valid HTTP header name.")
    if name.lower() in _RESERVED_HEADERS:
        raise _fail(field, f"{name!r} is reserved for HTTP framing; choose another header.")
    return name


# ---------------------------------------------------------------------------------------------
# API key
# ---------------------------------------------------------------------------------------------


class ApiKeyAuth(httpx.Auth):
    """The consumer's API key in the header (or query parameter) the consumer is configured with."""

    def __init__(self, key: str, header: str = "Authorization", query_param: str | None = None) -> None:
        self._header = header
        self._query_param = query_param or None
        # Higress key-auth takes the header value verbatim, so only Authorization gets a scheme word.
        self._value = f"Bearer {key}" if header.lower() == "authorization" else key
        self._key = key

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


def _api_key_auth(credentials: Mapping[str, Any]) -> ApiKeyAuth:
    key = _header_safe(credentials, "api_key")
    query_param = _text(credentials, "api_key_query")
    if query_param:
        return ApiKeyAuth(key, query_param=query_param)
    return ApiKeyAuth(key, _header_name(credentials, "api_key_header", "Authorization"))


# ---------------------------------------------------------------------------------------------
# JWT
# ---------------------------------------------------------------------------------------------

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


class JwtAuth(httpx.Auth):
    """A locally signed JWT carrying the consumer identity claim, cached until close to expiry."""

    def __init__(
        self,
        key: SigningKey,
        algorithm: str,
        consumer_id: str,
        *,
        consumer_claim: str = "uid",
        issuer: str | None = None,
        kid: str | None = None,
        lifetime: int = _DEFAULT_JWT_LIFETIME,
        header: str = "Authorization",
        prefix: str = "Bearer",
        clock: Clock = time.time,
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._consumer_id = consumer_id
        self._consumer_claim = consumer_claim
        self._issuer = issuer or None
        self._kid = kid or None
        self._lifetime = lifetime
        self._header = header
        self._prefix = prefix.strip()
        self._clock = clock
        # Renew when less than 10% of the lifetime (at least 60 s) is left, so a token never
        # expires in flight; capped at half the lifetime so very short lifetimes still get reuse.
        self._renew_margin = min(max(lifetime * 0.1, 60.0), lifetime / 2)
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


def _jwt_auth(credentials: Mapping[str, Any]) -> JwtAuth:
    jwk, pem_key = _parse_key_material(_required(credentials, "jwt_jwks"))
    algorithm = _jwt_algorithm(credentials, jwk, pem_key)
    key = _jwk_signing_key(jwk, algorithm) if jwk is not None else _fitting_key(pem_key, algorithm)
    consumer_claim = _text(credentials, "jwt_consumer_claim") or "uid"
    issuer = _text(credentials, "jwt_issuer") or None
    _check_claim_name(consumer_claim, issuer)
    kid = jwk.get("kid") if jwk is not None else None
    auth = JwtAuth(
        key,
        algorithm,
        _required(credentials, "jwt_consumer_id"),
        consumer_claim=consumer_claim,
        issuer=issuer,
        kid=kid if isinstance(kid, str) else None,
        lifetime=_jwt_lifetime(credentials),
        header=_header_name(credentials, "jwt_header_name", "Authorization"),
        prefix=_jwt_prefix(credentials),
    )
    _check_can_sign(auth)
    return auth


def _parse_key_material(raw: str) -> tuple[dict[str, Any] | None, PrivateKeyTypes | None]:
    """(JWK, None) for a JWK or JWK set (first key, as Higress falls back to), or (None, PEM key)."""
    if raw.startswith("-----BEGIN"):
        return None, _load_pem(raw)
    try:
        document = json.loads(raw)
    except ValueError:
        # `from None`: the decode error carries the whole secret document in its `.doc`.
        raise _fail("jwt_jwks", "is neither valid JSON (a JWK or JWK set) nor a PEM private key.") from None
    if isinstance(document, dict) and "keys" in document:
        keys = document["keys"]
        if not isinstance(keys, list) or not keys or not isinstance(keys[0], dict):
            raise _fail("jwt_jwks", "the JWK set has no keys; its 'keys' must be a non-empty list of JWKs.")
        return keys[0], None
    if isinstance(document, dict) and "kty" in document:
        return document, None
    raise _fail("jwt_jwks", "must be a JWK (with 'kty'), a JWK set (with 'keys') or a PEM private key.")


def _load_pem(raw: str) -> PrivateKeyTypes:
    data = raw.encode("ascii", "replace")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise _fail("jwt_jwks", "the PEM private key is encrypted; paste an unencrypted key.") from None
    except (ValueError, UnsupportedAlgorithm):
        public = _is_public_pem(data)
    # Raised outside the handler so the cryptography error (and its context) is not attached.
    if public:
        raise _fail("jwt_jwks", "holds a public key; signing needs the private key.")
    raise _fail("jwt_jwks", "could not be read as a PEM private key.")


def _is_public_pem(data: bytes) -> bool:
    try:
        serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _jwt_algorithm(credentials: Mapping[str, Any], jwk: dict[str, Any] | None, pem_key: PrivateKeyTypes | None) -> str:
    """The configured algorithm, else the key's own `alg`, else the usual one for the key type."""
    configured = _text(credentials, "jwt_algorithm")
    declared = jwk.get("alg") if jwk is not None else None
    if configured:
        algorithm = _ALGORITHM_BY_UPPER.get(configured.upper())
        if algorithm is None:
            raise _fail(
                "jwt_algorithm",
                f"{configured[:32]!r} is not supported; use one of {', '.join(_JWT_ALGORITHMS)}.",
            )
        if isinstance(declared, str) and declared and declared != algorithm:
            raise _fail(
                "jwt_algorithm",
                f"{algorithm} does not match the alg {declared[:32]!r} declared by the key in 'jwt_jwks'.",
            )
        return algorithm
    if isinstance(declared, str) and declared in _JWT_ALGORITHMS:
        return declared
    inferred = _default_algorithm(jwk, pem_key)
    if inferred is None:
        raise _fail("jwt_algorithm", "is required: it cannot be inferred from the key in 'jwt_jwks'.")
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
    return _fail("jwt_jwks", f"holds {_describe_jwk(jwk)}, which cannot sign {algorithm} (see 'jwt_algorithm').")


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
        raise _fail("jwt_jwks", "holds a public key only; signing needs the private JWK (with 'd').")
    try:
        key = loader(jwk)
    except (jwt.PyJWTError, ValueError, KeyError, TypeError, UnsupportedAlgorithm):
        # `from None`: library errors and their context may describe the key material.
        raise _fail("jwt_jwks", f"the {kty} private JWK could not be loaded; check its members.") from None
    return _fitting_key(key, algorithm)


def _oct_secret(jwk: dict[str, Any]) -> bytes:
    k = jwk.get("k")
    if not isinstance(k, str) or not k:
        raise _fail("jwt_jwks", "the symmetric (oct) JWK has no 'k' member.")
    # Higress uses the base64url-decoded `k` as the HMAC secret. Python's decoder silently skips
    # stray characters, so check the alphabet first rather than sign with a truncated secret.
    if not _BASE64URL.fullmatch(k):
        raise _fail("jwt_jwks", "the symmetric (oct) JWK's 'k' is not valid base64url.")
    try:
        secret = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))  # JWKs omit the padding
    except (binascii.Error, ValueError):
        raise _fail("jwt_jwks", "the symmetric (oct) JWK's 'k' is not valid base64url.") from None
    if not secret:
        raise _fail("jwt_jwks", "the symmetric (oct) JWK's 'k' decodes to an empty secret.")
    return secret


def _fitting_key(key: PrivateKeyTypes | None, algorithm: str) -> SigningKey:
    """Check a loaded private key fits the algorithm's family (and curve, for ES*)."""
    if algorithm.startswith("HS"):
        raise _fail("jwt_jwks", f"{algorithm} needs a symmetric JWK (kty 'oct'), not a PEM key (see 'jwt_algorithm').")
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
    raise _fail("jwt_jwks", f"holds {_describe_key(key)}, which cannot sign {algorithm} (see 'jwt_algorithm').")


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
        raise _fail("jwt_consumer_claim", f"{claim!r} is a time claim the plugin sets itself; use e.g. 'uid'.")
    if claim == "iss" and issuer:
        raise _fail("jwt_consumer_claim", "'iss' conflicts with 'jwt_issuer'; leave one of them empty.")


def _jwt_lifetime(credentials: Mapping[str, Any]) -> int:
    raw = credentials.get("jwt_expiration")
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
        raise _fail("jwt_expiration", "must be a whole number of seconds.")
    if not 1 <= value <= _MAX_JWT_LIFETIME:
        raise _fail("jwt_expiration", f"must be between 1 and {_MAX_JWT_LIFETIME} seconds (7 days).")
    return value


def _jwt_prefix(credentials: Mapping[str, Any]) -> str:
    # Absent means the gateway default "Bearer"; an explicitly empty value means "token only".
    if credentials.get("jwt_header_prefix") is None:
        return "Bearer"
    prefix = _text(credentials, "jwt_header_prefix")
    if not _PRINTABLE_ASCII.fullmatch(prefix):
        raise _fail("jwt_header_prefix", "contains characters that cannot be sent in an HTTP header.")
    return prefix


def _check_can_sign(auth: JwtAuth) -> None:
    """Sign one throwaway token so library-level key problems surface now, not on the first call."""
    try:
        auth.issue(time.time())
    except Exception:  # noqa: BLE001 - whatever the library raised may describe the key; keep it out
        raise _fail("jwt_jwks", "the key could not sign a token with the selected algorithm.") from None


# ---------------------------------------------------------------------------------------------
# HMAC (X-Ca-* scheme): pure functions first, so tests can replay the documented vectors
# ---------------------------------------------------------------------------------------------

HMAC_SIGNED_HEADERS: Final = ("x-ca-key", "x-ca-nonce", "x-ca-signature-method", "x-ca-timestamp")
_FIXED_LINES: Final = ("accept", "content-md5", "content-type", "date")
_NOT_IN_HEADER_BLOCK: Final = frozenset({"x-ca-signature", "x-ca-signature-headers", ":method", *_FIXED_LINES})
_SIGNATURE_METHODS: Final = {"hmacsha256": "HmacSHA256", "hmacsha1": "HmacSHA1"}
# Everything the signer owns; dropped before each signing so a retried request is signed afresh.
_HMAC_OWNED_HEADERS: Final = (
    "x-ca-signature", "x-ca-signature-headers", "x-ca-key", "x-ca-nonce",
    "x-ca-timestamp", "x-ca-signature-method", "date", "content-md5",
)  # fmt: skip
# Higress buffers at most 32 MiB to check Content-MD5 and answers 413 above that, so larger
# uploads go without it (the signature then covers headers, path and query only).
_MAX_MD5_BODY_BYTES: Final = 32 * 1024 * 1024
_FORM_TYPE: Final = "application/x-www-form-urlencoded"


def content_md5(body: bytes) -> str:
    """Base64 of the MD5 digest of the exact body bytes (the Content-MD5 header value)."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")  # MD5 is what the protocol mandates


def parse_params(encoded: str) -> list[tuple[str, str]]:
    """Split and percent-decode a query string or form body the way Higress does.

    `+` stays `+` (Higress decodes `%XX` only); a name without `=` gets an empty value. Raw bytes
    that are not UTF-8 survive as surrogates so the string-to-sign re-encodes to the wire bytes.
    """
    pieces = encoded.split("&")
    if pieces and pieces[-1] == "":
        pieces.pop()  # Higress stops at the end of input, so a trailing '&' adds nothing
    params = []
    for piece in pieces:
        name, _, value = piece.partition("=")
        params.append((_decode(name), _decode(value)))
    return params


def _decode(text: str) -> str:
    return unquote(text, encoding="utf-8", errors="surrogateescape")


def string_to_sign(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_names: Iterable[str],
    form_params: Iterable[tuple[str, str]] = (),
) -> str:
    """The Higress string-to-sign (gateway-protocol.md §2.3).

    `path` is the raw path as sent (not decoded, base path included); `query` and `form_params`
    are decoded pairs (see `parse_params`). Five fixed lines, then one `name:value` line per signed
    header (lowercased, sorted, none at all when there are none), then path and sorted parameters.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = [method.upper(), *(lowered.get(name, "") for name in _FIXED_LINES)]
    names = sorted({n.strip().lower() for n in signed_names if n.strip()} - _NOT_IN_HEADER_BLOCK)
    lines += [f"{name}:{lowered.get(name, '')}" for name in names]
    return "\n".join(lines) + "\n" + _path_and_parameters(path, [*query, *form_params])


def _path_and_parameters(path: str, params: Iterable[tuple[str, str]]) -> str:
    first: dict[str, str] = {}
    for name, value in params:
        first.setdefault(name, value)  # first value wins, and query comes before form params
    if not first:
        return path
    # Higress keeps parameters in a std::map, i.e. sorted by bytes.
    ordered = sorted(first, key=lambda name: name.encode("utf-8", "surrogateescape"))
    return path + "?" + "&".join(f"{name}={first[name]}" for name in ordered)


def hmac_signature(secret: str, text: str, signature_method: str = "HmacSHA256") -> str:
    """Base64 HMAC of the string-to-sign; Higress uses SHA-1 only for exactly `HmacSHA1`."""
    digest = hashlib.sha1 if signature_method == "HmacSHA1" else hashlib.sha256
    mac = hmac.new(secret.encode("utf-8"), text.encode("utf-8", "surrogateescape"), digest)
    return base64.b64encode(mac.digest()).decode("ascii")


class HmacAuth(httpx.Auth):
    """Signs each request with the X-Ca-* scheme over the exact URL, headers and body bytes sent."""

    # httpx then reads streamed bodies (JSON and multipart) before auth_flow, so `request.content`
    # is the final body and Content-MD5 covers the bytes that actually go on the wire.
    requires_request_body = True

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        signature_method: str = "HmacSHA256",
        *,
        clock: Clock = time.time,
        nonce_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._signature_method = signature_method
        self._clock = clock
        self._nonce_factory = nonce_factory

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Set the X-Ca-* headers on `request` in place; safe to call again on a retried request."""
        for name in _HMAC_OWNED_HEADERS:
            request.headers.pop(name, None)
        body = request.content
        content_type = request.headers.get("content-type", "")
        is_form = _FORM_TYPE in content_type.lower()
        if request.headers.get("accept", "*/*") == "*/*":
            # httpx sends "*/*" by default; the classic gateway doc asks for an explicit Accept.
            request.headers["Accept"] = _default_accept(body, content_type)
        # Higress answers 400 to a Content-MD5 on an empty body; form bodies are signed as parameters.
        if body and not is_form and len(body) <= _MAX_MD5_BODY_BYTES:
            request.headers["Content-MD5"] = content_md5(body)
        now_ms = round(self._clock() * 1000)
        request.headers["Date"] = formatdate(now_ms // 1000, usegmt=True)  # RFC 1123, GMT
        request.headers["X-Ca-Key"] = self._access_key
        request.headers["X-Ca-Timestamp"] = str(now_ms)
        request.headers["X-Ca-Nonce"] = self._nonce_factory()  # fresh on every run, retries included
        request.headers["X-Ca-Signature-Method"] = self._signature_method
        # No spaces: Higress splits this list on "," without trimming.
        request.headers["X-Ca-Signature-Headers"] = ",".join(HMAC_SIGNED_HEADERS)
        request.headers["X-Ca-Signature"] = hmac_signature(
            self._secret_key, self._string_to_sign(request, body, is_form), self._signature_method
        )

    @staticmethod
    def _string_to_sign(request: httpx.Request, body: bytes, is_form: bool) -> str:
        raw_path = request.url.raw_path.decode("utf-8", "surrogateescape")
        path, _, query = raw_path.partition("?")
        form = parse_params(body.decode("utf-8", "surrogateescape")) if is_form and body else []
        return string_to_sign(request.method, path, parse_params(query), request.headers, HMAC_SIGNED_HEADERS, form)

    def __repr__(self) -> str:
        return f"HmacAuth(signature_method={self._signature_method!r})"


def _default_accept(body: bytes, content_type: str) -> str:
    """`text/event-stream` for a JSON body asking to stream, else `application/json`."""
    # The substring test keeps large non-streaming bodies from being parsed at all.
    if body and "json" in content_type.lower() and b'"stream"' in body:
        try:
            document = json.loads(body)
        except ValueError:
            return "application/json"
        if isinstance(document, dict) and document.get("stream") is True:
            return "text/event-stream"
    return "application/json"


def _hmac_auth(credentials: Mapping[str, Any]) -> HmacAuth:
    access_key = _header_safe(credentials, "hmac_access_key")
    secret_key = _required(credentials, "hmac_secret_key")
    configured = _text(credentials, "hmac_signature_method") or "HmacSHA256"
    method = _SIGNATURE_METHODS.get(configured.lower())
    if method is None:
        raise _fail("hmac_signature_method", f"{configured[:32]!r} is not supported; use HmacSHA256 or HmacSHA1.")
    return HmacAuth(access_key, secret_key, method)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], httpx.Auth]]] = {
    "api_key": _api_key_auth,
    "jwt": _jwt_auth,
    "hmac": _hmac_auth,
}


def auth_from_credentials(credentials: Mapping[str, Any]) -> httpx.Auth:
    """Build the auth scheme the credentials select; errors name the credential field at fault.

    Reads `credentials` only (never mutates it) and raises `CredentialsValidateFailedError` for
    anything that would make every request fail, so the problem shows up when credentials are saved.
    """
    method = _text(credentials, "auth_method").lower() or "api_key"
    builder = _BUILDERS.get(method)
    if builder is None:
        raise _fail("auth_method", f"unknown value {method[:32]!r}; expected api_key, jwt or hmac.")
    return builder(credentials)
