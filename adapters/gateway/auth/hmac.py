"""HMAC consumers: the Higress hmac-auth `X-Ca-*` signature over the final method, headers, path, query and body.

The pure functions come first so tests can replay published signing examples; `HmacAuth` applies
them to the request exactly as it goes on the wire. `Accept` is one of the signed lines; it is
signed as the transport set it, so an HMAC consumer sends the same headers as any other. The
headers the transport adds to a request (extra headers, attribution, cache control) are listed in
X-Ca-Signature-Headers and signed with the X-Ca-* ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Final
from urllib.parse import unquote

import httpx

from adapters.credentials import credential_error, header_value, required_text, text
from adapters.gateway.headers import SIGNED_EXTENSION

Clock = Callable[[], float]

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
    """The Higress hmac-auth string-to-sign.

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
        config: HmacConfig,
        *,
        clock: Clock = time.time,
        nonce_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._access_key = config.access_key
        self._secret_key = config.secret_key
        self._signature_method = config.signature_method
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
        # Higress answers 400 to a Content-MD5 on an empty body; form bodies are signed as parameters.
        if body and not is_form and len(body) <= _MAX_MD5_BODY_BYTES:
            request.headers["Content-MD5"] = content_md5(body)
        now_ms = round(self._clock() * 1000)
        request.headers["Date"] = formatdate(now_ms // 1000, usegmt=True)  # RFC 1123, GMT
        request.headers["X-Ca-Key"] = self._access_key
        request.headers["X-Ca-Timestamp"] = str(now_ms)
        request.headers["X-Ca-Nonce"] = self._nonce_factory()  # fresh on every run, retries included
        request.headers["X-Ca-Signature-Method"] = self._signature_method
        # The transport's added headers (extra, attribution, cache control) are signed too.
        signed = (*HMAC_SIGNED_HEADERS, *(name.lower() for name in request.extensions.get(SIGNED_EXTENSION, ())))
        # No spaces: Higress splits this list on "," without trimming.
        request.headers["X-Ca-Signature-Headers"] = ",".join(signed)
        request.headers["X-Ca-Signature"] = hmac_signature(
            self._secret_key, self._string_to_sign(request, body, is_form, signed), self._signature_method
        )

    @staticmethod
    def _string_to_sign(request: httpx.Request, body: bytes, is_form: bool, signed: Iterable[str]) -> str:
        raw_path = request.url.raw_path.decode("utf-8", "surrogateescape")
        path, _, query = raw_path.partition("?")
        form = parse_params(body.decode("utf-8", "surrogateescape")) if is_form and body else []
        return string_to_sign(request.method, path, parse_params(query), request.headers, signed, form)

    def __repr__(self) -> str:
        return f"HmacAuth(signature_method={self._signature_method!r})"


@dataclass(frozen=True, slots=True)
class HmacConfig:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    signature_method: str = "HmacSHA256"

    def client_auth(self) -> HmacAuth:
        return HmacAuth(self)

    def client_auths(self) -> tuple[HmacAuth, ...]:
        """The one credential set of this scheme: several are not supported, endpoints still fail over."""
        return (self.client_auth(),)

    def secrets(self, request: httpx.Request | None = None) -> tuple[tuple[str, str], ...]:
        """(field, value) of each value a report must not show (adapters/gateway/redaction.py), with
        the signature `request` carried: replayable while its timestamp is fresh."""
        signature = request.headers.get("x-ca-signature", "") if request is not None else ""
        keys = (("hmac_access_key", self.access_key), ("hmac_secret_key", self.secret_key))
        return (*keys, ("hmac signature", signature)) if signature else keys


def hmac_config(fields: Mapping[str, Any]) -> HmacConfig:
    access_key = header_value(fields, "hmac_access_key")
    secret_key = required_text(fields, "hmac_secret_key")
    configured = text(fields, "hmac_signature_method") or "HmacSHA256"
    method = _SIGNATURE_METHODS.get(configured.lower())
    if method is None:
        raise credential_error(
            "hmac_signature_method", f"{configured[:32]!r} is not supported; use HmacSHA256 or HmacSHA1."
        )
    return HmacConfig(access_key, secret_key, method)
